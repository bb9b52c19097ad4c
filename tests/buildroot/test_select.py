"""buildroot/scripts/emberd_select.py: the one selection of modules, TLS and emberd-control.

The same code trims emberd in Buildroot (``trim --kconfig .config`` after
the package is installed into the target), installs a trimmed emberd for
other build systems (``make install``) and checks the device configuration
in Buildroot's post-build script.  An installed tree is checked with the
real ``emberd -V`` and ``emberd -tt``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .conftest import ROOT, SRC, TREE, module_files

DEVICE_CONF = ROOT / "rootfs/etc/emberd/emberd.conf"


def _site(dest: Path) -> Path:
    return dest / f"usr/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"


def _install(select: ModuleType, dest: Path, modules: str = "all", tls: str = "mbedtls",
             control: bool = True, pyc_only: bool = False) -> Path:
    site_dir = str(_site(Path("/")))
    sel = select.Selection(select.parse_modules(modules), tls, control)
    select.install(ROOT, dest, "/usr", site_dir, sys.executable, sel, pyc_only)
    return _site(dest)


def _emberd(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed emberd (its dependencies come from this interpreter's site)."""
    env = dict(os.environ, PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    script = site.parents[2] / "bin" / "emberd"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


# -- reading a selection ---------------------------------------------------------------------

def test_parse_modules(select: ModuleType) -> None:
    assert select.parse_modules("all") is None
    assert select.parse_modules("none") == frozenset()
    assert select.parse_modules("mod_staticfile, indexfile") == {"staticfile", "indexfile"}
    with pytest.raises(select.SelectionError, match="MODULES=none"):
        select.parse_modules("  ")


def test_a_selection_from_kconfig(select: ModuleType, tmp_path: Path) -> None:
    config = tmp_path / ".config"
    config.write_text("BR2_PACKAGE_PYTHON3=y\nBR2_PACKAGE_EMBERD=y\n"
                      "BR2_PACKAGE_EMBERD_MOD_STATICFILE=y\nBR2_PACKAGE_EMBERD_MOD_AUTHN_FILE=y\n"
                      "# BR2_PACKAGE_EMBERD_MOD_FASTCGI is not set\n"
                      "# BR2_PACKAGE_EMBERD_TLS_NONE is not set\n"
                      "BR2_PACKAGE_EMBERD_TLS_OPENSSL=y\n")
    sel = select.from_kconfig(config)
    assert sel == select.Selection(frozenset({"staticfile", "authn_file"}), "openssl", False)
    config.write_text("# BR2_PACKAGE_EMBERD is not set\n")
    with pytest.raises(select.SelectionError, match="BR2_PACKAGE_EMBERD is not set"):
        select.from_kconfig(config)


def test_unknown_modules_and_missing_dependencies_are_errors(select: ModuleType) -> None:
    available = module_files()
    requires = select.module_requires(SRC)
    sel = select.Selection(frozenset({"staticfile", "fastcgl"}))
    with pytest.raises(select.SelectionError, match=r"no such module: mod_fastcgl \(emberd has "):
        select.resolve(sel, available, requires)
    sel = select.Selection(frozenset({"authn_file"}))
    with pytest.raises(select.SelectionError, match="mod_authn_file needs mod_auth"):
        select.resolve(sel, available, requires)
    keep, drop = select.resolve(select.Selection(None), available, requires)
    assert (keep, drop) == (available, [])


def test_module_dependencies_are_read_from_the_imports(select: ModuleType) -> None:
    requires = select.module_requires(SRC)
    assert sorted(requires) == module_files()
    assert requires["authn_file"] == {"auth"}
    for needed in requires.values():
        assert needed <= set(module_files())  # never "Plugin" from `from . import Plugin`


# -- trimming an installed emberd ----------------------------------------------------------------

def test_make_install_trims_and_emberd_reports_it(select: ModuleType, tmp_path: Path) -> None:
    """Left-out modules are gone, -V says so, and a configuration naming one fails at start."""
    site = _install(select, tmp_path, "staticfile indexfile access", tls="none", control=False)
    pkg = site / "emberd"
    assert sorted(p.stem for p in (pkg / "modules").glob("*.py")) == [
        "__init__", "access", "indexfile", "staticfile"]
    assert not (pkg / "tls").exists() and not (pkg / "control").exists()
    # emberd-passwd imports mod_auth and mod_authn_file: it goes with them
    assert not (pkg / "passwd.py").exists()
    assert sorted(p.name for p in (tmp_path / "usr/bin").iterdir()) == ["emberd"]
    record = (next(site.glob("emberd-*.dist-info")) / "RECORD").read_text().splitlines()
    listed = {line.split(",")[0] for line in record}
    assert "emberd/modules/staticfile.py" in listed and "emberd/modules/fastcgi.py" not in listed
    assert all((site / path).exists() for path in listed)

    out = _emberd(site, "-V")
    assert out.returncode == 0, out.stderr
    assert "\t+ mod_staticfile\n" in out.stdout
    assert "\t- mod_fastcgi (left out of this build)\n" in out.stdout

    conf = tmp_path / "emberd.conf"
    conf.write_text(f'server.modules = ( "mod_staticfile", "mod_fastcgi" )\n'
                    f'server.document-root = "{tmp_path}"\n')
    out = _emberd(site, "-tt", "-f", str(conf))
    assert out.returncode != 0
    assert "server.modules: mod_fastcgi is not part of this build" in out.stderr
    conf.write_text(f'server.modules = ( "mod_staticfile" )\nserver.document-root = "{tmp_path}"\n'
                    'ssl.engine = "enable"\n')
    out = _emberd(site, "-tt", "-f", str(conf))
    assert "TLS support is not part of this build" in out.stderr


def test_pyc_only(select: ModuleType, tmp_path: Path) -> None:
    site = _install(select, tmp_path, "staticfile", pyc_only=True)
    pkg = site / "emberd"
    assert not list(pkg.rglob("*.py"))
    assert (pkg / "modules/staticfile.pyc").exists() and (pkg / "tls/__init__.pyc").exists()
    assert not (pkg / "modules/fastcgi.pyc").exists()
    out = _emberd(site, "-V")
    assert out.returncode == 0, out.stderr
    assert "\t+ mod_staticfile\n" in out.stdout and "\t- mod_status (left out" in out.stdout


def test_trim_as_buildroot_does(select: ModuleType, tmp_path: Path) -> None:
    """Everything installed (as the wheel is), then trimmed from a .config in place."""
    site = _install(select, tmp_path)
    bindir = tmp_path / "usr/bin"
    assert sorted(p.name for p in bindir.iterdir()) == ["emberd", "emberd-control",
                                                       "emberd-passwd"]
    config = tmp_path / ".config"
    config.write_text("BR2_PACKAGE_EMBERD=y\n"
                      + "".join(f"BR2_PACKAGE_EMBERD_MOD_{m.upper()}=y\n"
                                for m in module_files() if m not in ("auth", "authn_file"))
                      + "BR2_PACKAGE_EMBERD_TLS_MBEDTLS=y\nBR2_PACKAGE_EMBERD_CONTROL=y\n")
    args = ["trim", "--kconfig", str(config), "--site", str(site), "--bindir", str(bindir)]
    assert select.main([*args, "--dry-run"]) == 0
    assert (site / "emberd/modules/auth.py").exists()  # a dry run deletes nothing
    assert select.main(args) == 0
    assert not (site / "emberd/modules/auth.py").exists()
    assert not (site / "emberd/passwd.py").exists()
    assert sorted(p.name for p in bindir.iterdir()) == ["emberd", "emberd-control"]
    assert (site / "emberd/tls").is_dir() and (site / "emberd/control").is_dir()
    # the device configuration protects /api/ with mod_auth: the post-build check says so
    problems = select.check_config(DEVICE_CONF, site, SRC)
    assert [re.sub(r".*names (\S+),.*", r"\1", p) for p in problems] == [
        "mod_auth", "mod_authn_file"]


def test_a_module_needed_by_name_is_refused(select: ModuleType, tmp_path: Path) -> None:
    """Only console-script modules may import a module; the core never does."""
    site = _install(select, tmp_path)
    (site / "emberd/core/bad.py").write_text("from ..modules import fastcgi\n")
    sel = select.Selection(frozenset({"staticfile"}))
    with pytest.raises(select.SelectionError,
                       match=r"emberd/core/bad\.py imports the left-out mod_fastcgi"):
        select.plan(site, tmp_path / "usr/bin", sel)


# -- the device configuration ----------------------------------------------------------------------

def test_named_modules(select: ModuleType) -> None:
    text = ('# server.modules = ( "mod_alias" )\n'
            'server.modules = (\n  "mod_access",   # "mod_status"\n  "mod_staticfile",\n)\n'
            'server.modules += ( "mod_fastcgi" )\n')
    assert select.named_modules(text) == ["mod_access", "mod_staticfile", "mod_fastcgi"]


def _defconfig_selection(select: ModuleType, path: Path) -> Any:
    text = path.read_text()
    off = set(re.findall(r"^# BR2_PACKAGE_EMBERD_MOD_(\w+) is not set", text, re.M))
    tls = re.search(r"^BR2_PACKAGE_EMBERD_TLS_(\w+)=y", text, re.M)
    return select.Selection(frozenset(m for m in module_files() if m.upper() not in off),
                            tls.group(1).lower() if tls else "none",
                            "# BR2_PACKAGE_EMBERD_CONTROL is not set" not in text)


@pytest.mark.parametrize("defconfig", sorted(p.name for p in (TREE / "configs").iterdir()))
def test_the_device_configuration_fits_every_defconfig(select: ModuleType, tmp_path: Path,
                                                       defconfig: str) -> None:
    """What each defconfig builds, checked as its post-build script will check it."""
    sel = _defconfig_selection(select, TREE / "configs" / defconfig)
    site = _site(tmp_path)
    select.install(ROOT, tmp_path, "/usr", str(_site(Path("/"))), sys.executable,
                   select.Selection(None), False)
    select.trim(site, tmp_path / "usr/bin", sel)
    assert select.check_config(DEVICE_CONF, site, SRC) == []
    conf = tmp_path / "tls.conf"
    conf.write_text('server.modules = ( "mod_staticfile" )\nssl.engine = "enable"\n')
    tls_problem = select.check_config(conf, site, SRC)
    assert bool(tls_problem) == (sel.tls == "none")


def test_make_install(tmp_path: Path) -> None:
    """The Makefile target, with make's variables."""
    dest = tmp_path / "root"
    # not the flags of a make that runs these tests
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "install", f"DESTDIR={dest}",
                          "MODULES=mod_staticfile mod_indexfile", "TLS=none", "CONTROL=no",
                          f"PYTHON={sys.executable}"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "emberd: modules built in: mod_indexfile mod_staticfile" in out.stdout
    assert sorted(p.name for p in (_site(dest) / "emberd/modules").iterdir()) == [
        "__init__.py", "indexfile.py", "staticfile.py"]
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "install", f"DESTDIR={dest}",
                          "MODULES=authn_file", f"PYTHON={sys.executable}"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode != 0 and "mod_authn_file needs mod_auth" in out.stderr
