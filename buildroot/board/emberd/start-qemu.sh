#!/bin/sh
#
# start-qemu.sh [--use-system-qemu] [QEMU OPTION...]: boot the emberd image
# in this directory under QEMU, with the console on this terminal (Ctrl-A X
# quits QEMU). Put here by board/emberd/post-image.sh for the emberd QEMU
# defconfigs.
#
# emberd's ports are forwarded to the host's loopback only:
#   http://127.0.0.1:8080/  (EMBERD_HTTP_PORT)  -> port 80 of the guest
#   https://127.0.0.1:8443/ (EMBERD_HTTPS_PORT) -> port 443 (TLS builds)
# QEMU is the one Buildroot built (BR2_PACKAGE_HOST_QEMU) unless
# --use-system-qemu is given or there is none.

set -eu

cd "$(dirname "$0")"

SYSTEM_QEMU=0
if [ "${1:-}" = "--use-system-qemu" ]; then
	SYSTEM_QEMU=1
	shift
fi

HTTP="${EMBERD_HTTP_PORT:-8080}"
HTTPS="${EMBERD_HTTPS_PORT:-8443}"
FORWARD="hostfwd=tcp:127.0.0.1:$HTTP-:80,hostfwd=tcp:127.0.0.1:$HTTPS-:443"

if [ -f Image ] && [ -f rootfs.ext4 ]; then
	# emberd_qemu_aarch64_virt_defconfig
	QEMU="qemu-system-aarch64"
	set -- -M virt -cpu cortex-a53 -smp 1 -m 512 -nographic \
		-kernel Image -append "rootwait root=/dev/vda console=ttyAMA0" \
		-netdev "user,id=eth0,$FORWARD" \
		-device virtio-net-device,netdev=eth0 \
		-device virtio-rng-device \
		-drive file=rootfs.ext4,if=none,format=raw,id=hd0 \
		-device virtio-blk-device,drive=hd0 \
		"$@"
elif [ -f zImage ] && [ -f vexpress-v2p-ca9.dtb ]; then
	# emberd_qemu_arm_vexpress_defconfig (the SD card: rootfs.ext2, whose
	# size must be a power of 2)
	QEMU="qemu-system-arm"
	set -- -M vexpress-a9 -smp 1 -m 512 -nographic \
		-kernel zImage -dtb vexpress-v2p-ca9.dtb \
		-append "console=ttyAMA0,115200 rootwait root=/dev/mmcblk0" \
		-drive file=rootfs.ext2,if=sd,format=raw \
		-net nic,model=lan9118 -net "user,$FORWARD" \
		"$@"
else
	echo "start-qemu.sh: no emberd QEMU image in $(pwd)" >&2
	exit 1
fi

if [ "$SYSTEM_QEMU" = 0 ] && [ -x "../host/bin/$QEMU" ]; then
	QEMU="../host/bin/$QEMU"
fi

echo "emberd: http://127.0.0.1:$HTTP/ and https://127.0.0.1:$HTTPS/"
exec "$QEMU" "$@"
