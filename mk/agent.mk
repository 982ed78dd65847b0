# oras-agent (agent/): the static musl binary and its FROM-scratch image.
AGENT_TARGET := x86_64-unknown-linux-musl
AGENT_BIN := $(CARGO_TARGET_DIR)/$(AGENT_TARGET)/release/oras-agent
AGENT_IMAGE ?= localhost/oras-agent:dev

.PHONY: agent agent-image agent-check-static

# ring compiles C: musl-gcc (musl-tools) is its compiler here.
agent: ## the static musl oras-agent
	CC_x86_64_unknown_linux_musl=musl-gcc $(CARGO) build -p oras-agent --release --target $(AGENT_TARGET)
	@ls -l $(AGENT_BIN)

agent-image: agent ## the agent image: FROM scratch, /oras-agent, user 65532 (buildah)
	mkdir -p $(CARGO_TARGET_DIR)/agent-image
	cp $(AGENT_BIN) $(CARGO_TARGET_DIR)/agent-image/oras-agent
	buildah bud --layers -f agent/Dockerfile -t $(AGENT_IMAGE) $(CARGO_TARGET_DIR)/agent-image

# It must run in distroless and shell-less application images.
agent-check-static: agent ## the agent binary is static and runs
	@file $(AGENT_BIN) | grep -Eq 'statically linked|static-pie linked' || { file $(AGENT_BIN); echo "$(AGENT_BIN) is not static"; exit 1; }
	@! ldd $(AGENT_BIN) 2>/dev/null | grep -q '=>' || { echo "$(AGENT_BIN) has dynamic dependencies"; exit 1; }
	$(AGENT_BIN) --version

TEST_TARGETS += agent-check-static
