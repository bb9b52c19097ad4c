# emberd -- the front door.  `make run` and `make test` work from a clean
# clone: they create .venv/ with the package and its tools on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BUILD  := build
STAMP  := $(VENV)/.installed-stamp
HOST_CONF := $(BUILD)/host.conf
CONTROL_CONF := $(BUILD)/control.conf

.PHONY: all setup run user deps test firmware-test lint typecheck unit docs clean bench

all: test

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "emberd needs Python >= 3.11 ($(PYTHON) is older)"; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed; installing Debian's python3-venv"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y python3-venv && \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,soak]'
	@# bytecode now: compiling at every start costs time and (transient) memory
	$(BIN)/python -m compileall -q src >/dev/null
	@touch $@

setup: $(STAMP)

# The device configuration with a host overlay: 127.0.0.1:8080, the UI in
# rootfs/var/www, everything writable under build/.
$(HOST_CONF): Makefile
	@mkdir -p $(BUILD)/run/tmp $(BUILD)/run/log
	@{ echo '# Written by make: the device configuration with a host overlay.'; \
	   echo 'include "$(CURDIR)/rootfs/etc/emberd/emberd.conf"'; \
	   echo 'server.bind := "127.0.0.1"'; \
	   echo 'server.port := 8080'; \
	   echo 'server.username := ""'; \
	   echo 'server.groupname := ""'; \
	   echo 'server.document-root := "$(CURDIR)/rootfs/var/www"'; \
	   echo 'server.pid-file := "$(CURDIR)/$(BUILD)/run/emberd.pid"'; \
	   echo 'server.errorlog := ""'; \
	   echo 'server.upload-dirs := ( "$(CURDIR)/$(BUILD)/run/tmp" )'; \
	   echo '# emberd starts the control API itself (on the device it is a service)'; \
	   echo 'fastcgi.server := ( "/api/" => ( "control" => ('; \
	   echo '  "bin-path" => "$(CURDIR)/$(BIN)/emberd-control --config $(CURDIR)/$(CONTROL_CONF)",'; \
	   echo '  "socket" => "$(CURDIR)/$(BUILD)/run/control.sock", "max-procs" => 1,'; \
	   echo '  "check-local" => "disable" ) ) )'; \
	   echo 'auth.backend.htdigest.userfile := "$(CURDIR)/$(BUILD)/run/htdigest"'; \
	   echo 'include "$(CURDIR)/$(BUILD)/run/*.conf"'; \
	 } > $@

# emberd-control's device configuration with paths under build/
$(CONTROL_CONF): Makefile
	@mkdir -p $(BUILD)/run/uploads
	@{ echo '# Written by make: the device control configuration with a host overlay.'; \
	   echo 'include "$(CURDIR)/rootfs/etc/emberd/control.conf"'; \
	   echo 'control.socket-group := ""'; \
	   echo 'control.upload-dir := "$(CURDIR)/$(BUILD)/run/uploads"'; \
	   echo 'control.tunables-file := "$(CURDIR)/$(BUILD)/run/tunables.conf"'; \
	   echo 'control.emberd-config := "$(CURDIR)/$(HOST_CONF)"'; \
	   echo 'control.emberd-pid-file := "$(CURDIR)/$(BUILD)/run/emberd.pid"'; \
	   echo 'control.reboot-command := ( "/bin/echo", "make run: not rebooting this machine" )'; \
	 } > $@

# A user for the API and the status pages of `make run` (asks for a password)
user: $(STAMP)
	@mkdir -p $(BUILD)/run
	$(BIN)/emberd-passwd --digest emberd --sha256 $(BUILD)/run/htdigest $${EMBERD_USER:-admin}

run: $(STAMP) $(HOST_CONF) $(CONTROL_CONF)
	$(BIN)/emberd -tt -f $(HOST_CONF)
	$(BIN)/emberd-control -t --config $(CONTROL_CONF)
	@echo "emberd serves rootfs/var/www and the API under /api/ on http://127.0.0.1:8080/ (Ctrl-C stops it)"
	PYTHONMALLOC=malloc $(BIN)/emberd -D -f $(HOST_CONF)

lint: $(STAMP)
	$(BIN)/ruff check src tests

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

unit: $(STAMP)
	$(BIN)/pytest

# Debian packages the tests use (installed when missing; see .ci/deps)
deps:
	.ci/deps

test: deps lint typecheck firmware-lint unit firmware-test

# the firmware images for both ARM flavours, booted under QEMU and smoke-tested
firmware-test: deps $(STAMP)
	$(MAKE) image qemu-test ARCH=aarch64
	$(MAKE) image qemu-test ARCH=armhf

docs: $(STAMP)
	$(BIN)/python -m emberd.config.docs docs/configuration.md

clean:
	rm -rf $(BUILD) .pytest_cache .mypy_cache .ruff_cache

# Benchmarks are not tests: run them on a quiet machine and record the
# figures (and this command) in docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m tests.bench.bench

# The lighttpd bug-#3084 memory soak (python -m emberd.tools.soak; README "Memory soak"):
#   SOAK_MINUTES  steady phase in minutes (10; the slope target needs >= 10)
#   SOAK_COMPARE  lighttpd: also soak Debian's lighttpd in front of the same backend
#   SOAK_OUT      where soak.csv, soak.png and soak.md go (build/soak)
# About 27 minutes with the defaults, twice that compared: run it on a quiet machine.
SOAK_MINUTES ?= 10
SOAK_COMPARE ?=
SOAK_OUT     ?= $(BUILD)/soak
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,soak]'
	SOAK_MINUTES='$(SOAK_MINUTES)' SOAK_COMPARE='$(SOAK_COMPARE)' SOAK_OUT='$(SOAK_OUT)' \
	  $(BIN)/python -m emberd.tools.soak

# Firmware through Buildroot and the external tree in buildroot/ (README "Firmware").
# Buildroot downloads every source: this needs internet.
#   BR2        a Buildroot checkout (2026.02.x LTS or newer), required
#   DEFCONFIG  one of buildroot/configs/ (emberd_qemu_aarch64_virt; _defconfig optional)
#   BR2_OUT    Buildroot's output directory (build/buildroot/DEFCONFIG): images in
#              BR2_OUT/images. It is configured from DEFCONFIG only when it has no
#              .config yet, so menuconfig changes stay.
#   BR2_TARGET what to make in it (everything; e.g. menuconfig, emberd-rebuild)
DEFCONFIG ?= emberd_qemu_aarch64_virt
BR2_OUT   ?= $(BUILD)/buildroot/$(patsubst %_defconfig,%,$(DEFCONFIG))
BR2_TARGET ?=
# DEFCONFIG= : ours must not reach Buildroot, where it names savedefconfig's file
BR2_MAKE = $(MAKE) -C '$(BR2)' O='$(abspath $(BR2_OUT))' DEFCONFIG=
.PHONY: buildroot buildroot-check install
# load every defconfig and run utils/check-package with a Buildroot checkout (offline)
buildroot-check: $(STAMP)
	@test -n '$(BR2)' -a -d '$(BR2)/package' || { echo "usage: make buildroot-check BR2=/path/to/buildroot"; exit 2; }
	$(BIN)/python -m pip install --quiet flake8 python-magic
	EMBERD_BUILDROOT='$(abspath $(BR2))' $(BIN)/pytest tests/buildroot/test_with_buildroot.py

buildroot:
	@test -n '$(BR2)' -a -f '$(BR2)/Makefile' -a -d '$(BR2)/package' || { \
	  echo "usage: make buildroot BR2=/path/to/buildroot [DEFCONFIG=...] (BR2: a Buildroot checkout)"; \
	  exit 2; }
	test -f '$(BR2_OUT)/.config' || $(BR2_MAKE) BR2_EXTERNAL='$(CURDIR)/buildroot' \
	  $(patsubst %_defconfig,%,$(DEFCONFIG))_defconfig
	$(BR2_MAKE) $(BR2_TARGET)

# A trimmed emberd for other build systems (Yocto, OpenWrt, ...), chosen as in
# Buildroot's menu by the same code (buildroot/scripts/emberd_select.py):
#   DESTDIR        the target root file system (required)
#   MODULES        all (default), none or module names: "staticfile indexfile access"
#   TLS            mbedtls (default), openssl, or none (leaves emberd/tls out)
#   CONTROL        yes (default) or no (leaves emberd-control out)
#   PYC_ONLY       1: only .pyc files (PYTHON must then be the target's Python X.Y)
#   PYTHON_VERSION the target's Python X.Y (default: $(PYTHON)'s): lib/pythonX.Y/site-packages
#   PREFIX         /usr; TARGET_PYTHON: the #! of the console scripts (/usr/bin/python3)
# h2, h11, ujson (and python-mbedtls or Python's ssl) are the build system's to install.
MODULES  ?= all
TLS      ?= mbedtls
CONTROL  ?= yes
PYC_ONLY ?=
PREFIX   ?= /usr
TARGET_PYTHON  ?= /usr/bin/python3
PYTHON_VERSION ?=
install:
	@test -n '$(DESTDIR)' || { echo "usage: make install DESTDIR=/path/to/rootfs [MODULES=...]"; exit 2; }
	$(PYTHON) buildroot/scripts/emberd_select.py install --destdir '$(DESTDIR)' \
	  --prefix '$(PREFIX)' --interpreter '$(TARGET_PYTHON)' --modules '$(MODULES)' \
	  --tls '$(TLS)' --control '$(CONTROL)' $(if $(PYC_ONLY),--pyc-only) \
	  $(if $(PYTHON_VERSION),--python-version '$(PYTHON_VERSION)')

# Firmware: QEMU test images from Debian packages (make image / qemu-test ARCH=...)
include firmware/firmware.mk
