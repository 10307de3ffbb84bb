# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Each creates .venv when it is absent and installs the project into it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hkmr-installed

.PHONY: install demo test test-fast clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hkmr sweep table2 --preset smoke --out demo_output

test: $(STAMP)
	$(VENV)/bin/pytest

test-fast: $(STAMP)
	$(VENV)/bin/pytest -m "not slow"

clean:
	rm -rf demo_output .pytest_cache ray_results
