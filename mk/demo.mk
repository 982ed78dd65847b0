# make demo: the two-step workflow end to end (demo/run.sh); demo-tests: the same flow as tests.
.PHONY: demo demo-tests
demo: bootstrap
	demo/run.sh

demo-tests: bootstrap
	bats demo/demo.bats

TEST_TARGETS += demo-tests
