# mailcall developer and CI entry points. `make test` is the README's test command and
# what .ci/run calls: on a fresh Debian machine (as root) it installs Dovecot and the
# libraries from .ci/apt-packages.txt, builds .venv, builds the test Asterisk when it
# is not cached yet (../shared/asterisk/build-asterisk.sh, a few minutes the first
# time, then instant) and runs ruff and the whole suite, tests/live against that
# Asterisk. MAILCALL_SHARED names the shared folder (default: beside the repository);
# MAILCALL_ASTERISK_PREFIX, if set, names an Asterisk prefix to use instead.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The example policy: the packaged copy `mailcall init` writes (one file, not two).
POLICY ?= core/data/small-company.toml
STATE ?= $(CURDIR)/.run
MAILCALL_SHARED ?= $(abspath $(CURDIR)/../shared)
export MAILCALL_SHARED

.PHONY: test test-live asterisk serve lint bench system-packages venv clean

# The prefix of the test Asterisk: the given one, else the shared build's (built if missing).
ASTERISK_PREFIX = $$(if [ -n "$$MAILCALL_ASTERISK_PREFIX" ]; then echo "$$MAILCALL_ASTERISK_PREFIX"; \
	else out=$$(bash $(MAILCALL_SHARED)/asterisk/build-asterisk.sh) || exit 1; echo "$$out" | tail -1; fi)

test: system-packages venv lint
	prefix=$(ASTERISK_PREFIX) && MAILCALL_ASTERISK_PREFIX=$$prefix $(BIN)/pytest -q

# Only the tests on the real Asterisk (tests/live).
test-live: system-packages venv
	prefix=$(ASTERISK_PREFIX) && MAILCALL_ASTERISK_PREFIX=$$prefix $(BIN)/pytest -q tests/live

# Build (or find in the cache) the test Asterisk and print its prefix.
asterisk:
	@echo $(ASTERISK_PREFIX)

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
