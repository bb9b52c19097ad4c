# firmware/firmware.mk -- QEMU test images and the flash tool (included by the
# top-level Makefile).  Everything runs with the project's .venv Python.
#
#   make image ARCH=aarch64|armhf        build/firmware/<arch>/{vmlinuz,initrd.cpio.gz}
#   make qemu-test ARCH=...              boot it, run tests/qemu, report timings and RSS
#   make qemu-run ARCH=...               boot it with the console on this terminal
#   make flash IMAGE=file DEVICE=/dev/sdX   write an image to an SD card (asks first)
#   make firmware-lint                   shellcheck + ruff on what firmware/ owns
#   make firmware-clean                  remove the images (keeps the download cache)
#   make firmware-distclean              also remove build/firmware/cache
#
# Host packages: see firmware/README.md (qemu-system-arm qemu-user-static
# gcc-aarch64-linux-gnu g++-arm-linux-gnueabihf kmod nghttp2-client curl ...).

ARCH ?= aarch64
FW_BUILD := $(BUILD)/firmware
FW_SHELL := buildroot/package/emberd/S50emberd buildroot/package/emberd/S51emberd-control \
	firmware/skeleton/init $(wildcard firmware/skeleton/etc/init.d/*) \
	firmware/skeleton/usr/lib/emberd-test/www/cgi-bin/sh

.PHONY: image qemu-test qemu-run flash firmware-lint firmware-clean firmware-distclean

image: $(STAMP)
	$(BIN)/python firmware/image.py --arch $(ARCH) $(if $(FORCE),--force)

qemu-test: image
	$(BIN)/python firmware/qemu_test.py --arch $(ARCH)

qemu-run: image
	$(BIN)/python firmware/qemu_test.py --arch $(ARCH) --interactive

flash: $(STAMP)
	@test -n "$(IMAGE)" -a -n "$(DEVICE)" || { echo "usage: make flash IMAGE=file DEVICE=/dev/sdX"; exit 2; }
	firmware/flash $(IMAGE) $(DEVICE)

firmware-lint: $(STAMP)
	shellcheck $(FW_SHELL)
	$(BIN)/ruff check firmware/fw firmware/image.py firmware/qemu_test.py firmware/flash tests/firmware tests/qemu

firmware-clean:
	rm -rf $(filter-out $(FW_BUILD)/cache,$(wildcard $(FW_BUILD)/*))

firmware-distclean:
	rm -rf $(FW_BUILD)
