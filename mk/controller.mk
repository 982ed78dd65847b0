# The OrasCache controller (controller/): static binary, image, generated CRD and install YAML.
CONTROLLER_TARGET := x86_64-unknown-linux-musl
CONTROLLER_BIN := $(CARGO_TARGET_DIR)/$(CONTROLLER_TARGET)/release/oras-cache-controller
CONTROLLER_IMAGE ?= ghcr.io/oras-cache/oras-cache-controller:v0.1.0

.PHONY: controller controller-manifests controller-image controller-check-manifests test-platform

controller: ## the static musl controller (10-20 minutes on two cores)
	$(CARGO) build -p oras-cache-controller --release --target $(CONTROLLER_TARGET)
	@ls -l $(CONTROLLER_BIN)

# The drift tests compare the committed YAML with the code.
controller-manifests: ## regenerate deploy/crd.yaml, deploy/oras-cache.yaml and the chart's CRD
	$(CARGO) run -q -p oras-cache-controller -- crd --output deploy/crd.yaml
	cp deploy/crd.yaml charts/oras-cache/crds/orascaches.yaml
	$(CARGO) run -q -p oras-cache-controller -- manifests --output deploy/oras-cache.yaml

controller-image: controller ## the controller image from the static binary (buildah)
	mkdir -p $(CARGO_TARGET_DIR)/controller-image
	cp $(CONTROLLER_BIN) $(CARGO_TARGET_DIR)/controller-image/oras-cache-controller
	strip $(CARGO_TARGET_DIR)/controller-image/oras-cache-controller
	cp /etc/ssl/certs/ca-certificates.crt $(CARGO_TARGET_DIR)/controller-image/
	buildah bud --layers -f controller/Dockerfile -t $(CONTROLLER_IMAGE) $(CARGO_TARGET_DIR)/controller-image

controller-check-manifests: controller ## the static binary is static and prints the committed YAML
	@if readelf -l $(CONTROLLER_BIN) | grep -q INTERP; then echo "$(CONTROLLER_BIN) is not static"; exit 1; fi
	$(CONTROLLER_BIN) crd | diff -u deploy/crd.yaml -
	$(CONTROLLER_BIN) manifests | diff -u deploy/oras-cache.yaml -

# Not in TEST_TARGETS: the release musl build takes 10-20 minutes on two cores; the drift tests
# in `cargo test` already compare the committed YAML with the code.

# The real control plane (etcd, kube-apiserver, kube-controller-manager, kubectl and helm from
# scripts/peers.sh): the install, the controller as its own ServiceAccount, ownership, the
# steady state and the RBAC table (controller/tests/platform.rs), the reconciler in-process
# (cluster.rs), helm (install.rs). `make test` runs them with the other tests.
test-platform: peers ## the platform suite against a real API server (part of make test)
	$(CARGO) test -p oras-cache-controller --test platform --test cluster --test install
