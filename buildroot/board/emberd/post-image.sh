#!/bin/sh
#
# board/emberd/post-image.sh BINARIES_DIR BOARD: the images of an emberd
# defconfig (BR2_ROOTFS_POST_IMAGE_SCRIPT; BOARD comes from
# BR2_ROOTFS_POST_SCRIPT_ARGS).
#
#   qemu-aarch64-virt, qemu-arm-vexpress: BINARIES_DIR/start-qemu.sh boots
#       the image with emberd's ports forwarded to the host's 127.0.0.1;
#   raspberrypi4-64: BINARIES_DIR/sdcard.img (genimage), to be written to
#       an SD card with firmware/flash.
#
# Runs in the Buildroot directory (genimage.sh is Buildroot's).

set -eu

IMAGES="$1"
BOARD="${2:-}"
BOARD_DIR="$(dirname "$0")"

case "$BOARD" in
	qemu-aarch64-virt|qemu-arm-vexpress)
		install -m 0755 "$BOARD_DIR/start-qemu.sh" "$IMAGES/start-qemu.sh"
		echo "emberd: boot it with $IMAGES/start-qemu.sh"
		;;
	raspberrypi4-64)
		support/scripts/genimage.sh -c "$BOARD_DIR/genimage-$BOARD.cfg"
		echo "emberd: write $IMAGES/sdcard.img with firmware/flash"
		;;
	*)
		echo "post-image.sh: unknown board '$BOARD'" >&2
		exit 1
		;;
esac
