# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@# Debian's python3 lacks ensurepip unless python3-venv is installed: fall back to a venv
	@# without pip and bootstrap pip from PyPA, so nothing has to be installed by hand.
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV) && $(PYTHON) -m venv --without-pip $(VENV) \
		&& $(BIN)/python -c "import urllib.request as u; exec(u.urlopen('https://bootstrap.pypa.io/get-pip.py').read())"; }
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/avatarkit build examples/hero.jpg -o out
	@echo "the avatar is in out/hero/ - avatar.json lists every file (README.md explains them)"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/build.py

clean:
	rm -rf out .pytest_cache
