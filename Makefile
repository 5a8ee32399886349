# Every target sets itself up on a fresh machine: only python3 (3.11+), git and make needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
WHEELS := .cache/wheels
# The policy pack's own virtualenv: pulumi-policy pins an older protobuf than pulumi.
POLICY_VENV := .venv-policy
ARGS   ?=

.PHONY: offline test setup wheels bench openapi clean

offline: setup
	$(PY) -m offline $(ARGS)

test: setup
	$(PY) -m pytest -q tests

setup: $(VENV)/.installed $(WHEELS)/.complete $(POLICY_VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-lambda.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("python3 >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# `pulumi preview --policy-pack policy` runs the pack in it (policy/PulumiPolicy.yaml);
# tests/policy runs the pack's runner in it.
$(POLICY_VENV)/.installed: policy/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit("python3 >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt
	touch $@

# Pure-Python wheels for the Lambda layer (python 3.12, any platform, so arm64 too).
# pip refuses a pin that has no py3-none-any wheel, and the layer builder refuses a
# missing one, so a compiled package can never slip into the layer.
wheels: $(WHEELS)/.complete

$(WHEELS)/.complete: requirements-lambda.txt $(VENV)/.installed
	mkdir -p $(WHEELS)
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps \
		--only-binary=:all: --platform any --python-version 3.12 \
		--implementation py --abi none -d $(WHEELS) -r requirements-lambda.txt
	touch $@

# The published contract: docs/openapi.json, generated from the route table
# (tests/handlers/test_openapi.py fails while the committed file is stale).
openapi: $(VENV)/.installed
	$(PY) -m handlers.openapi > docs/openapi.json.tmp
	mv docs/openapi.json.tmp docs/openapi.json

bench: setup
	$(PY) benchmarks/run_all.py $(ARGS)
	$(PY) benchmarks/exporter_memory.py
	$(PY) benchmarks/load_offline.py

clean:
	rm -rf $(VENV) $(POLICY_VENV) .cache .build
