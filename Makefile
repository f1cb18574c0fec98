# mailcall developer and CI entry points. `make test` is the README's test command and
# what .ci/run calls: on a fresh Debian machine (as root) it installs Dovecot and the
# libraries from .ci/apt-packages.txt, builds .venv and runs ruff and the whole suite.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
POLICY ?= contrib/policies/small-company.toml
STATE ?= $(CURDIR)/.run

.PHONY: test serve lint bench system-packages venv clean

test: system-packages venv lint
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check .

serve: venv
	mkdir -p $(STATE)/spool $(STATE)/greetings
	$(BIN)/mailcall serve --policy $(POLICY) --spool-dir $(STATE)/spool \
		--greetings-dir $(STATE)/greetings

bench: venv
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/policy_scale.py

# Debian packages the tests need (a real Dovecot among them); installed only when missing.
system-packages:
	@missing=$$(for p in $$(cat .ci/apt-packages.txt); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing; \
	fi

venv: $(BIN)/mailcall

$(BIN)/mailcall: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache $(STATE)
