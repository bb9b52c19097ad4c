################################################################################
#
# python-mbedtls
#
################################################################################

PYTHON_MBEDTLS_VERSION = 2.10.1
PYTHON_MBEDTLS_SITE = https://files.pythonhosted.org/packages/13/93/6ab1d8abcf21d3f3041974130110b1af0c5803302c56131932ee8300a5ed
PYTHON_MBEDTLS_SETUP_TYPE = setuptools
PYTHON_MBEDTLS_LICENSE = MIT
PYTHON_MBEDTLS_LICENSE_FILES = LICENSE.txt
# setup.py cythonizes the .pyx files when Cython is importable. Upstream
# pins Cython 3.0.10, older than Python 3.14; Buildroot's host-python-cython
# (3.1) generates C for it. The extensions link libmbedtls, libmbedx509
# and libmbedcrypto, found in the staging sysroot.
PYTHON_MBEDTLS_DEPENDENCIES = host-python-cython mbedtls2

# Before building, setup.py loads the build machine's libmbedtls with ctypes
# and stops when it is older than 2.28: meaningless when cross-compiling,
# and fatal on a build machine with an old Mbed TLS installed. Skip it.
define PYTHON_MBEDTLS_SKIP_BUILD_MACHINE_CHECK
	$(SED) 's/^if len(sys.argv) > 1 and any($$/if False and any(/' $(@D)/setup.py
endef
PYTHON_MBEDTLS_POST_PATCH_HOOKS += PYTHON_MBEDTLS_SKIP_BUILD_MACHINE_CHECK

$(eval $(python-package))
