################################################################################
#
# mbedtls2
#
################################################################################

# Mbed TLS 2.28 (LTS, end of life upstream): python-mbedtls does not build
# against 3.x, the version of Buildroot's mbedtls package.
MBEDTLS2_VERSION = 2.28.10
MBEDTLS2_SITE = https://github.com/Mbed-TLS/mbedtls/releases/download/mbedtls-$(MBEDTLS2_VERSION)
MBEDTLS2_SOURCE = mbedtls-$(MBEDTLS2_VERSION).tar.bz2
MBEDTLS2_LICENSE = Apache-2.0 or GPL-2.0+
MBEDTLS2_LICENSE_FILES = LICENSE
MBEDTLS2_CPE_ID_VENDOR = arm
MBEDTLS2_CPE_ID_PRODUCT = mbed_tls
MBEDTLS2_INSTALL_STAGING = YES
# CMakeLists.txt asks for CMake 2.8.12; CMake 4 refuses anything older than
# 3.5 unless given a policy minimum.
MBEDTLS2_CONF_OPTS = \
	-DCMAKE_C_FLAGS="$(TARGET_CFLAGS) -std=c99" \
	-DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
	-DENABLE_PROGRAMS=OFF \
	-DENABLE_TESTING=OFF \
	-DMBEDTLS_FATAL_WARNINGS=OFF

ifeq ($(BR2_STATIC_LIBS),y)
MBEDTLS2_CONF_OPTS += \
	-DUSE_SHARED_MBEDTLS_LIBRARY=OFF -DUSE_STATIC_MBEDTLS_LIBRARY=ON
else ifeq ($(BR2_SHARED_STATIC_LIBS),y)
MBEDTLS2_CONF_OPTS += \
	-DUSE_SHARED_MBEDTLS_LIBRARY=ON -DUSE_STATIC_MBEDTLS_LIBRARY=ON
else
MBEDTLS2_CONF_OPTS += \
	-DUSE_SHARED_MBEDTLS_LIBRARY=ON -DUSE_STATIC_MBEDTLS_LIBRARY=OFF
endif

# The inline assembly of the bignum code runs out of registers in Thumb
# mode when built for debugging: use the C code then.
ifeq ($(BR2_ENABLE_DEBUG)$(BR2_ARM_INSTRUCTIONS_THUMB)$(BR2_ARM_INSTRUCTIONS_THUMB2),yy)
define MBEDTLS2_NO_ASM
	$(SED) '/^#define MBEDTLS_HAVE_ASM/d' $(@D)/include/mbedtls/config.h
endef
MBEDTLS2_POST_PATCH_HOOKS += MBEDTLS2_NO_ASM
endif

$(eval $(cmake-package))
