# Pillarbox: `make run` and `make test` are the two entry points (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Two installs: what `make run` needs (the package and its runtime dependencies) and, for
# test/lint/bench, the dev extras on top (pytest, mypy, ruff, moto, selenium, matplotlib).
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed

.PHONY: run test test-slow lint unit apt-deps webmail-deps venv bench fresh-check image image-arm64 image-test image-test-arm64 clean

$(PY):
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)

# -qq on the project's own installs: setuptools announces every editable install with an
# "InformationOnly" BuildBackendWarning (the same text on every run, nothing to act on);
# errors are still printed. tests/unit/test_packaging.py checks the metadata itself.
$(RUN_STAMP): $(PY) pyproject.toml
	$(PIP) install -q --upgrade pip
	$(PIP) install -qq -e .
	touch $@

$(STAMP): $(RUN_STAMP)
	$(PIP) install -qq -e '.[dev]'
	touch $@

venv: $(STAMP)

# Webmail's Debian packages (Roundcube, php-fpm; one per line in the file). Roundcube's
# database is ours (under the data dir): dbconfig-common is told not to make one. On a
# systemd host apt starts the system php8.2-fpm service; Pillarbox runs its own pool.
WEBMAIL_PACKAGES := appliance/webmail/debian-packages.txt
webmail-deps:
	@missing=$$(for p in $$(grep -v '^\s*#' $(WEBMAIL_PACKAGES)); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for webmail: $$missing"; \
		echo "roundcube-core roundcube/dbconfig-install boolean false" | $(SUDO) debconf-set-selections; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
		|| echo "webmail's packages could not be installed: dev mode runs without webmail"; \
		if [ -d /run/systemd/system ]; then \
			echo "webmail runs a private php-fpm: the system php8.2-fpm service is turned off"; \
			$(SUDO) systemctl disable --now -q php8.2-fpm.service 2>/dev/null || true; \
		fi; \
	fi

# Debian packages the tests drive as real clients and peers (one per line in the file).
apt-deps: webmail-deps
	@missing=$$(for p in $$(grep -v '^\s*#' tests/apt-packages.txt); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		if [ -d /run/systemd/system ]; then \
			echo "the tests run a private Dovecot: the system one that dovecot-imapd starts is turned off"; \
			$(SUDO) systemctl disable --now -q dovecot.service dovecot.socket 2>/dev/null || true; \
		fi; \
	fi

run: $(RUN_STAMP) webmail-deps
	$(VENV)/bin/pillarbox run --dev

lint: $(STAMP)
	$(VENV)/bin/ruff check appliance webui tests bench
	$(VENV)/bin/ruff format --check appliance webui tests bench
	$(VENV)/bin/mypy

unit: $(STAMP) apt-deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: $(STAMP) apt-deps lint
	$(VENV)/bin/pytest -m 'not image and not slow' $(PYTEST_ARGS)

# The long suites (marked slow: kill -9 loops, the 10,000-message import, fuzzers, a 20 MB
# message, fetchmail/curl/rspamd/S3/SFTP against the whole daemon). CI runs them after
# `make test`, which stays well under 20 minutes on 2 cores.
test-slow: $(STAMP) apt-deps
	$(VENV)/bin/pytest -m 'slow and not image' $(PYTEST_ARGS)

# Reference servers for the side-by-side benchmarks; Debian's packages are installed
# unconfigured ("No configuration") so no system MTA starts: bench/ runs private instances.
bench: $(STAMP) apt-deps
	@dpkg-query -W -f='$${Status}' postfix dovecot-imapd dovecot-pop3d 2>/dev/null | \
		grep -c 'install ok installed' | grep -q 3 || { \
		echo "postfix postfix/main_mailer_type select No configuration" | $(SUDO) debconf-set-selections; \
		$(SUDO) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			postfix dovecot-imapd dovecot-pop3d >/dev/null; }
	$(PIP) install -q -e '.[dev,bench]'
	$(PY) -m bench $(BENCH_ARGS)

# The README's two commands on a fresh minimal Debian 12 tree (image/fresh-check.sh): a
# missing install step fails here. Needs root; about 25 minutes; never part of `make test`.
fresh-check:
	$(SUDO) image/fresh-check.sh

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

# ---------------------------------------------------------------- appliance images
# image/README.md. Needs root (mmdebstrap --mode=root); never part of `make test`.
# build.sh installs its host tools (image/apt-packages.txt). A build is redone only when
# a source changed; the build's JSON facts file is written last and stands for it.
IMAGE_SOURCES := pyproject.toml $(shell find appliance webui firmware-hooks image \
	-path image/build -prune -o -type f -not -path '*/__pycache__/*' \
	-not -name fresh-check.sh -print 2>/dev/null)
IMAGE_AMD64 := image/build/pillarbox-amd64.json
IMAGE_ARM64 := image/build/pillarbox-arm64-rpi.json

$(IMAGE_AMD64): $(IMAGE_SOURCES) | $(STAMP)
	$(SUDO) image/build.sh amd64

$(IMAGE_ARM64): $(IMAGE_SOURCES) | $(STAMP)
	$(SUDO) image/build.sh arm64

image: $(IMAGE_AMD64)

image-arm64: $(IMAGE_ARM64)

image-test: $(IMAGE_AMD64) $(STAMP)
	$(VENV)/bin/pytest -m image tests/image -k TestAmd64 $(PYTEST_ARGS)

image-test-arm64: $(IMAGE_ARM64) $(STAMP)
	$(VENV)/bin/pytest -m image tests/image -k TestArm64 $(PYTEST_ARGS)
