# make demo: the two-step workflow end to end (demo/run.sh); demo-tests: the same flow as tests.
.PHONY: demo demo-tests
demo: bootstrap ## the two-step workflow end to end (loopback registry, podman)
	demo/run.sh

demo-tests: bootstrap ## demo/demo.bats: the workflow, a failing step, two inputs, a shell-less image
	bats demo/demo.bats

TEST_TARGETS += demo-tests
