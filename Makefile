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
	$(BIN)/emberd -D -f $(HOST_CONF)

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

# Firmware: QEMU test images from Debian packages (make image / qemu-test ARCH=...)
include firmware/firmware.mk
