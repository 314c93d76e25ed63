# The two commands of the README. Each creates .venv on first use and installs what it needs:
# the quickstart only the core package, the tests also the dev, serve, web and judge extras.
VENV ?= .venv
PY := $(VENV)/bin/python
CORE_STAMP := $(VENV)/.lamm-core
STAMP := $(VENV)/.lamm-installed
SETUP_DEPS := pyproject.toml scripts/setup_venv.sh scripts/warm_bytecode.py

.PHONY: quickstart test setup clean

$(CORE_STAMP): $(SETUP_DEPS)
	bash scripts/setup_venv.sh $(VENV) core
	touch $(CORE_STAMP)

$(STAMP): $(SETUP_DEPS)
	bash scripts/setup_venv.sh $(VENV) all
	touch $(CORE_STAMP) $(STAMP)

setup: $(STAMP)

quickstart: $(CORE_STAMP)
	$(VENV)/bin/lamm quickstart $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

clean:
	rm -rf $(VENV)
