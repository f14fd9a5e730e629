# Rusty Cat: developer entry points.
#
#   make run    create .venv, install the app, start it (ARGS="..." is passed to the app)
#   make test   install Python + Debian test dependencies, lint, run the whole suite
#               (PYTEST_ARGS="..." is passed to pytest)
#
# Works from a clean clone (GNU make, Debian/Ubuntu); every target is idempotent.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

ARGS ?=
PYTEST_ARGS ?=

# Azurite (local Azure Blob service for the Azure tests), pinned by tests/azurite/package-lock.json.
AZURITE_VERSION := 3.37.0
AZURITE_DIR := tests/azurite
AZURITE_BIN := $(AZURITE_DIR)/node_modules/.bin/azurite-blob

# Shared libraries Qt needs even on the offscreen platform (tests, --self-test).
QT_DEBS := libegl1 libgl1 libxkbcommon0 libfontconfig1 libfreetype6 libglib2.0-0 libdbus-1-3
# Extra libraries for Qt's xcb platform plugin; only installed by `make run` when an
# X display ($DISPLAY) is present, so headless machines don't pull in X11 packages.
XCB_DEBS := libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 \
            libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libx11-xcb1

# Test-only packages on top of QT_DEBS: a real Secret Service (gnome-keyring-daemon on a private D-Bus session
# from dbus-run-session) for tests/manager/test_keyring_secret_service.py; a real HTTP proxy (tinyproxy) and
# iproute2 (`ip netns`, `tc`: a 6 Mbit/s link in a network namespace) for tests/field/.
TEST_DEBS := $(QT_DEBS) gnome-keyring dbus tinyproxy iproute2

ifneq ($(strip $(DISPLAY)),)
RUN_DEBS := $(QT_DEBS) $(XCB_DEBS)
else
RUN_DEBS := $(QT_DEBS)
endif

# Exit status 0 iff the interpreter is a supported CPython (3.11–3.13).
PY_VERSION_OK := import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else 1)

# $(call install_debs,PACKAGES): apt-get install whichever of PACKAGES are missing.
# Runs in a subshell so its early `exit 0` never ends the calling recipe.
# Cheap when everything is present (one dpkg-query per package, no apt-get update).
# Prints a note and succeeds when apt-get is absent or we are not root.
define install_debs
( \
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then \
	echo "note: apt-get not found; skipping Debian packages. Make sure these (or your distribution's equivalents) are installed: $(strip $(1))"; \
	exit 0; \
fi; \
missing=""; \
for pkg in $(1); do \
	case "$$(dpkg-query -W -f='$${db:Status-Abbrev}' "$$pkg" 2>/dev/null)" in \
		ii*) ;; \
		*) missing="$$missing $$pkg" ;; \
	esac; \
done; \
if [ -z "$$missing" ]; then exit 0; fi; \
if [ "$$(id -u)" -ne 0 ]; then \
	echo "note: missing Debian packages:$$missing"; \
	echo "note: not root, skipping; install them with: sudo apt-get install$$missing"; \
	exit 0; \
fi; \
echo "Installing Debian packages:$$missing"; \
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing \
)
endef

.PHONY: help run test lint venv system-deps test-deps run-deps clean azurite bench soak

help:
	@echo "make run     create .venv, install Rusty Cat and start it (ARGS='--self-test' etc.)"
	@echo "make test    install test dependencies (Python + Debian), run ruff and pytest (PYTEST_ARGS=...)"
	@echo "make lint    ruff check app tests"
	@echo "make package build the installers for this OS (Linux: AppImage + .deb) and self-test them"
	@echo "make bench   performance benchmarks against curl/aria2c (not part of make test)"
	@echo "make soak    long reliability run (crash soak for SOAK_SECONDS=600, storm, props x20, fault matrix;"
	@echo "             SOAK_SEED=N to replay) and a summary table: cases, faults, kills, bytes verified, lost"
	@echo "make clean   remove .venv, build output and caches"

venv: $(STAMP)

# Full install (app + test extras) so `make run` and `make test` share one venv.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
		echo "error: '$(PYTHON)' not found. Rusty Cat needs Python 3.11–3.13; pass PYTHON=/path/to/python3.X" >&2; \
		exit 1; }
	@$(PYTHON) -c '$(PY_VERSION_OK)' || { \
		echo "error: Rusty Cat needs Python 3.11–3.13, but $(PYTHON) is $$($(PYTHON) -V 2>&1)." >&2; \
		echo "error: install a supported Python and run e.g. 'make $(or $(MAKECMDGOALS),run) PYTHON=python3.12'." >&2; \
		exit 1; }
	@if [ -e $(VENV) ] && ! $(VENV_PY) -c '$(PY_VERSION_OK)' >/dev/null 2>&1; then \
		echo "Removing unusable $(VENV) (missing or unsupported interpreter)"; \
		rm -rf $(VENV); \
	fi
	@if [ ! -x $(VENV_PY) ]; then \
		echo "Creating $(VENV) with $$($(PYTHON) -V 2>&1) ($(PYTHON))"; \
		if ! $(PYTHON) -m venv $(VENV); then \
			echo "venv creation failed; trying to install the Debian venv package"; \
			rm -rf $(VENV); \
			ver="$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
			$(call install_debs,python$$ver-venv); \
			$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }; \
		fi; \
	fi
	$(VENV_PY) -m pip install --upgrade pip
	$(VENV_PY) -m pip install -e '.[test]'
	@touch $@

system-deps:
	@$(call install_debs,$(QT_DEBS))

run-deps:
	@$(call install_debs,$(RUN_DEBS))

test-deps:
	@$(call install_debs,$(TEST_DEBS))

run: run-deps $(STAMP)
	$(VENV_PY) -m app $(ARGS)

# Idempotent: skipped when the pinned version is already installed. Without npm the Azure
# tests skip (with the reason) instead of failing the whole run.
azurite:
	@if [ -x $(AZURITE_BIN) ] && grep -q '"version": "$(AZURITE_VERSION)"' $(AZURITE_DIR)/node_modules/azurite/package.json 2>/dev/null; then \
		exit 0; \
	elif ! command -v npm >/dev/null 2>&1; then \
		echo "note: npm not found; Azurite is not installed and the Azure Blob tests will be skipped."; \
		echo "note: install Node.js >= 20 with npm (Debian: apt-get install nodejs npm) and rerun make test."; \
	else \
		echo "Installing Azurite $(AZURITE_VERSION) into $(AZURITE_DIR)/ (npm ci, about 30 s)"; \
		npm ci --prefix $(AZURITE_DIR) --no-audit --no-fund --loglevel=error \
			|| { echo "error: installing Azurite with npm failed (see above)" >&2; exit 1; }; \
	fi

test: test-deps $(STAMP) azurite
	$(VENV)/bin/ruff check app tests
	QT_QPA_PLATFORM=offscreen $(VENV_PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check app tests

# Performance bench (issues 5 and 11): our CLI vs curl and aria2c on a loopback nginx (HTTP, HTTPS with a private
# CA, a 40 MB/s per-connection cap), the data path candidates, uploads (also on a 6 Mbit/s link in a network
# namespace: OSS, Azurite, default protocol), CPU, start-up, RSS and queue figures; installs nginx/aria2/curl/
# iproute2 when root, and its own Python tools (aiohttp, py-spy) into the venv, never as app dependencies. Never
# part of `make test`. ARGS="--size 256MiB" or ARGS="--url https://host/file" are passed through
# (python -m tests.bench.run --help).
bench: system-deps $(STAMP) azurite
	$(VENV_PY) -m tests.bench.run $(ARGS)

# Soak (issue 6): the long forms of the reliability suites, which `make test` runs short. The crash-and-resume soak
# keeps starting rounds of 20 SIGKILLs (16 MiB files) until SOAK_SECONDS are up; the control storm runs 20,000
# operations, the property tests 20x their examples (about 7 minutes on 2 cores), the fault matrix once. One seed
# (SOAK_SEED, random by default, printed) drives the soak, the storm and hypothesis. Every suite writes its figures
# to build/soak-report.jsonl (tests/reliability/soak_summary.py), printed as a table at the end; the target fails
# if a test failed or anything was lost.
SOAK_SECONDS ?= 600
SOAK_SEED ?=
SOAK_REPORT := build/soak-report.jsonl

soak: test-deps $(STAMP) azurite
	@seed="$(SOAK_SEED)"; [ -n "$$seed" ] || seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
	mkdir -p build; rm -f $(SOAK_REPORT) build/soak-fault-matrix.txt; \
	echo "soak: seed=$$seed, crash soak for $(SOAK_SECONDS) s (replay with: make soak SOAK_SEED=$$seed)"; \
	RUSTY_CAT_SOAK_REPORT=$(SOAK_REPORT) RUSTY_CAT_FAULT_MATRIX_REPORT=build/soak-fault-matrix.txt \
	RUSTY_CAT_SOAK_SEED=$$seed RUSTY_CAT_SOAK_SECONDS=$(SOAK_SECONDS) RUSTY_CAT_SOAK_KILLS=20 \
	RUSTY_CAT_SOAK_SIZE=16M RUSTY_CAT_STORM_OPS=20000 RUSTY_CAT_STORM_SEED=$$seed RUSTY_CAT_PROPS_SCALE=20 \
	QT_QPA_PLATFORM=offscreen $(VENV_PY) -m pytest -p tests.reliability.soak_summary -p no:cacheprovider \
		--hypothesis-seed=$$seed tests/reliability $(PYTEST_ARGS); status=$$?; \
	echo; echo "soak summary (seed $$seed):"; \
	$(VENV_PY) -m tests.reliability.soak_summary $(SOAK_REPORT) || status=1; \
	exit $$status

# Installers (issue 7): `make package` builds this OS's PyInstaller bundle in its own venv (.venv-package: only
# the runtime dependencies + PyInstaller, so test tools or a second Qt binding never reach the bundle), runs its
# --self-test offscreen, and on Linux builds dist/Rusty_Cat-<version>-<arch>.AppImage and
# dist/rusty-cat_<version>_<arch>.deb, self-tests both and fails above the size budget (packaging/bundle_config.py).
# The Debian packages: Qt's runtime libraries, the xcb libraries PyInstaller copies into the bundle (so the
# AppImage runs where libxcb-cursor0 is missing), the AppImage runtime's static libraries and tools, and GNOME
# Keyring + D-Bus for the self-test that checks the frozen keyring picks the Secret Service.
PKG_VENV := .venv-package
PKG_PY := $(PKG_VENV)/bin/python
PKG_STAMP := $(PKG_VENV)/.installed
PACKAGE_DEBS := $(QT_DEBS) $(XCB_DEBS) binutils gcc libc6-dev libsquashfuse-dev libfuse3-dev zlib1g-dev libzstd-dev \
                liblzma-dev liblz4-dev liblzo2-dev squashfs-tools dpkg gnome-keyring dbus

.PHONY: package package-deps package-clean

package-deps:
	@$(call install_debs,$(PACKAGE_DEBS))

$(PKG_STAMP): pyproject.toml packaging/requirements.txt packaging/constraints.txt
	@$(PYTHON) -c '$(PY_VERSION_OK)' || { echo "error: packaging needs Python 3.11–3.13 (PYTHON=...)" >&2; exit 1; }
	rm -rf $(PKG_VENV)
	$(PYTHON) -m venv $(PKG_VENV)
	$(PKG_PY) -m pip install -q --upgrade pip
	mkdir -p build
	$(PYTHON) packaging/build.py requirements > build/package-requirements.txt
	$(PKG_PY) -m pip install -q -r packaging/requirements.txt -r build/package-requirements.txt -c packaging/constraints.txt
	@touch $@

package: package-deps $(PKG_STAMP)
	@if [ "$$(uname -s)" = Linux ]; then \
		$(PKG_PY) packaging/build.py linux; \
	else \
		$(PKG_PY) packaging/build.py bundle && $(PKG_PY) packaging/build.py selftest && $(PKG_PY) packaging/build.py sizes; \
	fi

package-clean:
	rm -rf $(PKG_VENV) build/pyinstaller build/linux dist/rusty-cat "dist/Rusty Cat.app" dist/Rusty_Cat-* dist/rusty-cat_*

clean:
	rm -rf $(VENV) .venv-package build dist .pytest_cache .ruff_cache .hypothesis
	find . -path ./.git -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -prune -exec rm -rf {} +
