# s2s: `make demo` runs the whole job end to end; `make test` runs every test.
# Both set up what they need (.venv, Kafka jars) and skip what is already there.
PY      := .venv/bin/python
STAMP   := .venv/.installed
SHELL   := /bin/bash

.PHONY: setup demo test test-fast kafka-up kafka-down clean

setup: $(STAMP)
	@bash cluster/kafka/kafka.sh fetch
	@bash cluster/install-test-tools.sh

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || python3.11 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

demo: setup
	bash cluster/demo.sh

test: setup
	$(PY) -m pytest -q -rs --durations=15

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

kafka-up: setup
	bash cluster/kafka/kafka.sh start

kafka-down:
	bash cluster/kafka/kafka.sh stop

clean:
	rm -rf runs .pytest_cache
