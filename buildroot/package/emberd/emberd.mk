################################################################################
#
# emberd
#
################################################################################

# The project this external tree belongs to: buildroot/ sits next to
# pyproject.toml. Keep EMBERD_VERSION equal to its [project] version.
EMBERD_VERSION = 0.1.0
EMBERD_SITE = $(BR2_EXTERNAL_EMBERD_PATH)/..
EMBERD_SITE_METHOD = local
# Only what the wheel is built from: no .venv/, build/, tests/ or this tree.
EMBERD_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=__pycache__ --exclude='*.egg-info' \
	--include=/pyproject.toml --include=/README.md --include='/src/***' \
	--exclude='*'
# pyproject.toml builds with setuptools through PEP 517; the pep517 setup
# type adds no build backend, so it is a dependency here.
EMBERD_SETUP_TYPE = pep517
EMBERD_DEPENDENCIES = host-python-setuptools
# (no EMBERD_LICENSE: the project does not declare one yet)

# The choices of Config.in (modules, TLS, emberd-control) are applied by
# scripts/emberd_select.py, the same code that `make install` uses for
# other build systems: it deletes the left-out files (and emberd-passwd
# or emberd-control when what they import is gone) and prints the
# built-in list. emberd -V reports the modules whose files are present.
define EMBERD_SELECT_PARTS
	$(HOST_DIR)/bin/python3 $(BR2_EXTERNAL_EMBERD_PATH)/scripts/emberd_select.py \
		trim --kconfig $(BR2_CONFIG) \
		--site $(TARGET_DIR)/usr/lib/python$(PYTHON3_VERSION_MAJOR)/site-packages \
		--bindir $(TARGET_DIR)/usr/bin
endef
EMBERD_POST_INSTALL_TARGET_HOOKS += EMBERD_SELECT_PARTS

ifeq ($(BR2_PACKAGE_EMBERD_CONTROL),y)
define EMBERD_INSTALL_INIT_CONTROL
	$(INSTALL) -D -m 0755 $(EMBERD_PKGDIR)/S51emberd-control \
		$(TARGET_DIR)/etc/init.d/S51emberd-control
endef
endif

# With TLS, each device makes a certificate of its own at its first boot,
# with the library chosen (the script does nothing until this is set).
ifeq ($(BR2_PACKAGE_EMBERD_TLS_MBEDTLS),y)
EMBERD_CERT_BACKEND = mbedtls
else ifeq ($(BR2_PACKAGE_EMBERD_TLS_OPENSSL),y)
EMBERD_CERT_BACKEND = openssl
endif

ifneq ($(EMBERD_CERT_BACKEND),)
define EMBERD_INSTALL_INIT_CERT
	$(INSTALL) -D -m 0755 $(EMBERD_PKGDIR)/S49emberd-cert \
		$(TARGET_DIR)/etc/init.d/S49emberd-cert
	$(SED) 's/^EMBERD_CERT_BACKEND=""$$/EMBERD_CERT_BACKEND="$(EMBERD_CERT_BACKEND)"/' \
		$(TARGET_DIR)/etc/init.d/S49emberd-cert
endef
endif

define EMBERD_INSTALL_INIT_SYSV
	$(EMBERD_INSTALL_INIT_CERT)
	$(INSTALL) -D -m 0755 $(EMBERD_PKGDIR)/S50emberd \
		$(TARGET_DIR)/etc/init.d/S50emberd
	$(EMBERD_INSTALL_INIT_CONTROL)
endef

$(eval $(python-package))
