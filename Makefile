# The two commands of the README: `make demo` (the main job) and `make test`.
VENV ?= .venv
export LIGHTLIP_VENV := $(abspath $(VENV))

.PHONY: setup demo test clean
setup:
	@scripts/bootstrap.sh

demo: setup
	@$(VENV)/bin/lightlip-demo $(ARGS)

test: setup
	@scripts/run_tests.sh $(ARGS)

clean:
	rm -rf $(VENV) build demo
