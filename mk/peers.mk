# The real parts the tests meet, built from the Go module proxy at the versions in
# scripts/peers/versions and cached outside the clone by name and version (scripts/peers.sh).
.PHONY: peers

peers: ## build etcd, kube-apiserver, kube-controller-manager, kubectl, helm, oras and registry v3 (cached; a second run builds nothing)
	@scripts/peers.sh
