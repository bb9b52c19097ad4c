"""The tree against a real Buildroot checkout: defconfigs resolve, check-package is clean.

Collected only when EMBERD_BUILDROOT names a Buildroot checkout (2026.02.x
or newer; CI has none: Buildroot cannot be downloaded there), offline; a
full build needs internet and is not run here:

    make buildroot-check BR2=/path/to/buildroot

check-package also needs flake8 and python-magic importable by this Python
and shellcheck on the PATH (Debian: shellcheck, libmagic1).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import TREE, module_files

BUILDROOT = os.environ.get("EMBERD_BUILDROOT", "")
if not (Path(BUILDROOT) / "package/pkg-python.mk").exists():
    raise pytest.UsageError(f"EMBERD_BUILDROOT={BUILDROOT!r} is not a Buildroot checkout")

EXPECTED = {
    "emberd_qemu_aarch64_virt": ("mbedtls", {"PYTHON_MBEDTLS", "MBEDTLS2", "PYTHON_CERTIFI"}),
    "emberd_qemu_arm_vexpress": ("none", set()),
    "emberd_raspberrypi4_64": ("openssl", {"PYTHON3_SSL", "LIBOPENSSL_BIN"}),
}


def _make(out: Path, *args: str) -> str:
    done = subprocess.run(["make", "-s", "-C", BUILDROOT, f"O={out}", *args],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_defconfig_loads_and_resolves(tmp_path: Path, name: str) -> None:
    _make(tmp_path, f"BR2_EXTERNAL={TREE}", f"{name}_defconfig")
    config = dict(line.split("=", 1) for line in (tmp_path / ".config").read_text().splitlines()
                  if line.startswith("BR2_") and "=" in line)
    tls, extra = EXPECTED[name]
    for sym in ("EMBERD", "PYTHON3", "PYTHON_H2", "PYTHON_H11", "PYTHON_HPACK",
                "PYTHON_HYPERFRAME", "PYTHON_UJSON", "EMBERD_CONTROL", *extra):
        assert config.get(f"BR2_PACKAGE_{sym}") == "y", sym
    assert config[f"BR2_PACKAGE_EMBERD_TLS_{tls.upper()}"] == "y"
    assert config["BR2_INSTALL_LIBSTDCPP"] == "y"
    kept = {m for m in module_files() if config.get(f"BR2_PACKAGE_EMBERD_MOD_{m.upper()}") == "y"}
    assert kept == set(module_files()) - {"accesslog", "alias"}

    out = _make(tmp_path, "printvars",
                "VARS=EMBERD_POST_INSTALL_TARGET_HOOKS EMBERD_SETUP_TYPE BR2_ROOTFS_OVERLAY")
    assert "EMBERD_POST_INSTALL_TARGET_HOOKS=EMBERD_SELECT_PARTS" in out
    assert "EMBERD_SETUP_TYPE=pep517" in out
    assert f"BR2_ROOTFS_OVERLAY=\"{TREE}/../rootfs\"" in out
    deps = _make(tmp_path, "emberd-show-depends").split()
    assert "host-python-setuptools" in deps


def test_check_package_is_clean() -> None:
    missing = [m for m in ("flake8", "magic") if importlib.util.find_spec(m) is None]
    assert not missing and shutil.which("shellcheck"), \
        f"check-package needs flake8, python-magic and shellcheck (missing: {missing})"
    files = sorted(str(p.relative_to(TREE)) for p in TREE.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    done = subprocess.run([sys.executable, f"{BUILDROOT}/utils/check-package", "-b", *files],
                          cwd=TREE, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 warnings generated" in done.stderr
