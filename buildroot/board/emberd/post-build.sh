#!/bin/sh
#
# board/emberd/post-build.sh TARGET_DIR [BOARD]: checks an emberd image once
# the rootfs/ overlay is in place (BR2_ROOTFS_POST_BUILD_SCRIPT of the
# emberd defconfigs).
#
# The device configuration must not name a module, or use TLS, that the
# build leaves out (Config.in of package/emberd): emberd would refuse to
# start on every device. scripts/emberd_select.py, the code that trimmed
# emberd, checks it and the build stops with its message.

set -eu

TARGET="$1"
CONF="$TARGET/etc/emberd/emberd.conf"
SELECT="$BR2_EXTERNAL_EMBERD_PATH/scripts/emberd_select.py"

for site in "$TARGET"/usr/lib/python3*/site-packages; do
	if [ -d "$site/emberd" ] && [ -f "$CONF" ]; then
		"$HOST_DIR/bin/python3" "$SELECT" check-config --site "$site" "$CONF"
	fi
done
