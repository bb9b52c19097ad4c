"""The Buildroot tree's Kconfig, parsed with kconfiglib: the modules, TLS and the rest.

Every Config.in of buildroot/ is parsed as Buildroot would (from the tree's
top-level Config.in, with BR2_EXTERNAL_EMBERD_PATH set).  The symbols that
come from Buildroot itself (BR2_PACKAGE_PYTHON3, BR2_INSTALL_LIBSTDCPP, ...)
are declared by a stub, so that choices can be evaluated here, without a
Buildroot checkout: tests/buildroot/test_with_buildroot.py does the same
against a real one.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import kconfiglib
import pytest

from .conftest import ROOT, SRC, TREE, module_files

MOD = "BR2_PACKAGE_EMBERD_MOD_"


@pytest.fixture(scope="module")
def env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BR2_EXTERNAL_EMBERD_PATH", str(TREE))
        mp.delenv("srctree", raising=False)
        yield


@pytest.fixture(scope="module")
def kconfig(env: None) -> kconfiglib.Kconfig:
    return kconfiglib.Kconfig(str(TREE / "Config.in"), warn_to_stderr=False)


@pytest.fixture(scope="module")
def stubbed(env: None, kconfig: kconfiglib.Kconfig, tmp_path_factory: pytest.TempPathFactory
            ) -> kconfiglib.Kconfig:
    """The tree with every Buildroot symbol it uses declared as a plain bool."""
    undefined = sorted(name for name, sym in kconfig.syms.items() if not sym.nodes)
    stub = tmp_path_factory.mktemp("kconfig") / "Config.in"
    stub.write_text("".join(f'config {n}\n\tbool "{n}"\n\n' for n in undefined)
                    + f'source "{TREE}/Config.in"\n')
    return kconfiglib.Kconfig(str(stub), warn_to_stderr=False)


def module_symbols(kc: kconfiglib.Kconfig) -> dict[str, kconfiglib.Symbol]:
    return {name.removeprefix(MOD).lower(): sym for name, sym in kc.syms.items()
            if name.startswith(MOD) and sym.nodes}


def test_every_config_in_is_parsed_without_warnings(kconfig: kconfiglib.Kconfig) -> None:
    """The top-level Config.in sources every Config.in of the tree, and all parse cleanly."""
    files = {Path(f).resolve() for f in kconfig.kconfig_filenames}
    assert files == {p.resolve() for p in TREE.rglob("Config.in")}
    assert kconfig.warnings == []


def test_one_kconfig_bool_per_module_file(kconfig: kconfiglib.Kconfig) -> None:
    """Each file in src/emberd/modules has exactly one bool, and each bool a file."""
    symbols = module_symbols(kconfig)
    assert sorted(symbols) == module_files()
    for name, sym in symbols.items():
        assert sym.type == kconfiglib.BOOL, sym.name
        assert len(sym.nodes) == 1, f"{sym.name} is defined {len(sym.nodes)} times"
        node = sym.nodes[0]
        assert node.prompt is not None and node.prompt[0] == f"mod_{name}"
        # what it does and what it costs
        assert node.help and "Memory:" in node.help, f"{sym.name}: no memory cost in its help"
    # and no other symbol claims a module
    prompts = [node.prompt[0] for node in kconfig.node_iter()
               if isinstance(node.item, kconfiglib.Symbol) and node.prompt
               and node.prompt[0].startswith("mod_")]
    assert sorted(prompts) == sorted(f"mod_{n}" for n in module_files())


def test_module_dependencies_follow_the_imports(kconfig: kconfiglib.Kconfig,
                                                select: ModuleType) -> None:
    """A module that imports another one (mod_authn_file: mod_auth) depends on its bool."""
    requires = select.module_requires(SRC)
    assert requires["authn_file"] == {"auth"}
    symbols = module_symbols(kconfig)
    for name, needed in requires.items():
        deps = {s.name for s in kconfiglib.expr_items(symbols[name].direct_dep)}
        for other in needed:
            assert f"{MOD}{other.upper()}" in deps, f"mod_{name} imports mod_{other}"


def test_tls_is_a_choice_of_none_mbedtls_openssl(kconfig: kconfiglib.Kconfig,
                                                 select: ModuleType) -> None:
    tls = [c for c in kconfig.choices if c.nodes[0].prompt and c.nodes[0].prompt[0] == "TLS"]
    assert len(tls) == 1
    names = [s.name for s in tls[0].syms]
    assert names == [f"BR2_PACKAGE_EMBERD_TLS_{t.upper()}" for t in select.TLS_CHOICES]
    for sym in tls[0].syms:
        assert sym.nodes[0].help
    mbedtls = kconfig.syms["BR2_PACKAGE_EMBERD_TLS_MBEDTLS"]
    assert "end of life" in mbedtls.nodes[0].help
    assert "end of life" in kconfig.syms["BR2_PACKAGE_MBEDTLS2"].nodes[0].help.lower()


def _resolve(kc: kconfiglib.Kconfig, **values: str) -> dict[str, str]:
    """Set Buildroot's symbols (n unless given) and emberd's, as a user would."""
    kc.unset_values()
    for name, sym in kc.syms.items():
        if not name.startswith(("BR2_PACKAGE_EMBERD", "BR2_PACKAGE_PYTHON_MBEDTLS",
                                "BR2_PACKAGE_MBEDTLS2")) and sym.nodes:
            sym.set_value(values.get(name, "n"))
    for name in ("BR2_PACKAGE_EMBERD", *[n for n in values if n.startswith("BR2_PACKAGE_EMBERD_")]):
        kc.syms[name].set_value(values.get(name, "y"))
    return {name: sym.str_value for name, sym in kc.syms.items()}


def test_the_choices_resolve(stubbed: kconfiglib.Kconfig) -> None:
    """Runtime dependencies are selected; C++ and Mbed TLS 3 limit what can be chosen."""
    full = {"BR2_PACKAGE_PYTHON3": "y", "BR2_INSTALL_LIBSTDCPP": "y",
            "BR2_TOOLCHAIN_USES_GLIBC": "y"}
    v = _resolve(stubbed, **full, BR2_PACKAGE_EMBERD_TLS_MBEDTLS="y")
    assert v["BR2_PACKAGE_EMBERD"] == "y"
    for dep in ("PYTHON_H11", "PYTHON_H2", "PYTHON_UJSON", "PYTHON3_ZLIB", "LIBXCRYPT",
                "PYTHON_MBEDTLS", "MBEDTLS2", "PYTHON_CERTIFI", "PYTHON_TYPING_EXTENSIONS"):
        assert v[f"BR2_PACKAGE_{dep}"] == "y", dep
    assert v["BR2_PACKAGE_PYTHON3_SSL"] == "n"
    assert all(v[f"{MOD}{m.upper()}"] == "y" for m in module_files())  # all by default

    v = _resolve(stubbed, **full, BR2_PACKAGE_EMBERD_TLS_OPENSSL="y")
    assert v["BR2_PACKAGE_PYTHON3_SSL"] == v["BR2_PACKAGE_LIBOPENSSL_BIN"] == "y"
    assert v["BR2_PACKAGE_PYTHON_MBEDTLS"] == "n"

    v = _resolve(stubbed, **full)
    assert v["BR2_PACKAGE_EMBERD_TLS_NONE"] == "y"  # the default

    # Buildroot's mbedtls (3.x) and Mbed TLS 2.28 cannot both be there
    v = _resolve(stubbed, **full, BR2_PACKAGE_MBEDTLS="y", BR2_PACKAGE_EMBERD_TLS_MBEDTLS="y")
    assert v["BR2_PACKAGE_EMBERD_TLS_MBEDTLS"] == "n"
    assert v["BR2_PACKAGE_EMBERD_TLS_NONE"] == "y"
    assert v["BR2_PACKAGE_MBEDTLS2"] == "n"

    # without C++ (ujson): no mod_status, no emberd-control
    v = _resolve(stubbed, BR2_PACKAGE_PYTHON3="y")
    assert v[f"{MOD}STATUS"] == v["BR2_PACKAGE_EMBERD_CONTROL"] == "n"
    assert v[f"{MOD}STATICFILE"] == "y"

    # mod_authn_file goes with mod_auth
    v = _resolve(stubbed, **full, BR2_PACKAGE_EMBERD_MOD_AUTH="n")
    assert v[f"{MOD}AUTHN_FILE"] == "n"

    v = _resolve(stubbed, BR2_INSTALL_LIBSTDCPP="y")
    assert v["BR2_PACKAGE_EMBERD"] == "n"  # needs python3


def _defconfigs() -> list[Path]:
    return sorted((TREE / "configs").glob("*_defconfig"))


def test_the_defconfigs(kconfig: kconfiglib.Kconfig) -> None:
    """Three boards; each forces hash checks, has emberd, the overlay and the board scripts."""
    assert [p.name for p in _defconfigs()] == [
        "emberd_qemu_aarch64_virt_defconfig", "emberd_qemu_arm_vexpress_defconfig",
        "emberd_raspberrypi4_64_defconfig"]
    post_image = (TREE / "board/emberd/post-image.sh").read_text()
    for path in _defconfigs():
        lines = path.read_text().splitlines()
        values = dict(line.split("=", 1) for line in lines if "=" in line)
        assert values["BR2_DOWNLOAD_FORCE_CHECK_HASHES"] == "y"
        assert values["BR2_PACKAGE_EMBERD"] == "y"
        assert values["BR2_PACKAGE_PYTHON3"] == "y"
        assert values["BR2_ROOTFS_OVERLAY"] == '"$(BR2_EXTERNAL_EMBERD_PATH)/../rootfs"'
        assert "BR2_TOOLCHAIN_BUILDROOT_CXX" in values or "BR2_TOOLCHAIN_EXTERNAL_BOOTLIN" in values
        for key in ("BR2_ROOTFS_POST_BUILD_SCRIPT", "BR2_ROOTFS_POST_IMAGE_SCRIPT"):
            script = TREE / values[key].strip('"').replace("$(BR2_EXTERNAL_EMBERD_PATH)/", "")
            assert os.access(script, os.X_OK), f"{script} must be executable"
        board = values["BR2_ROOTFS_POST_SCRIPT_ARGS"].strip('"')
        assert re.search(rf"^\s*(\S+\|)*{re.escape(board)}(\|\S+)*\)", post_image, re.M)
        # every emberd symbol named exists (a renamed option would be dropped silently)
        for line in lines:
            m = re.match(r"(?:# )?(BR2_PACKAGE_EMBERD\w*)", line)
            if m:
                assert m.group(1) in kconfig.syms and kconfig.syms[m.group(1)].nodes, line


def test_the_emberd_package(select: ModuleType) -> None:
    """emberd.mk: the project's version, a local site, PEP 517 with setuptools declared."""
    mk = (TREE / "package/emberd/emberd.mk").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    var = dict(re.findall(r"^(EMBERD_\w+) = (.*)$", mk, re.M))
    assert var["EMBERD_VERSION"] == project["project"]["version"]
    assert var["EMBERD_SITE_METHOD"] == "local"
    assert var["EMBERD_SITE"] == "$(BR2_EXTERNAL_EMBERD_PATH)/.."
    assert var["EMBERD_SETUP_TYPE"] == "pep517"
    assert project["build-system"]["build-backend"].startswith("setuptools")
    assert "host-python-setuptools" in var["EMBERD_DEPENDENCIES"].split()
    assert "scripts/emberd_select.py" in mk and "--kconfig $(BR2_CONFIG)" in mk
    # each init script: installed by the .mk with mode 0755, not executable in git
    for script in sorted((TREE / "package/emberd").glob("S[0-9][0-9]*")):
        assert f"$(INSTALL) -D -m 0755 $(EMBERD_PKGDIR)/{script.name}" in mk
        assert not os.access(script, os.X_OK), f"{script.name}: check-package wants 0644"


def test_downloads_have_hashes_with_their_source() -> None:
    for mk in sorted(TREE.glob("package/*/*.mk")):
        text = mk.read_text()
        if re.search(r"_SITE_METHOD = local", text):
            continue
        hashes = mk.with_suffix(".hash")
        assert hashes.exists(), f"{mk.name} downloads: it needs {hashes.name}"
        lines = hashes.read_text().splitlines()
        assert lines[0].startswith("# "), "the first line says where the hashes come from"
        entries = [line.split() for line in lines if line and not line.startswith("#")]
        assert entries and all(len(e) == 3 and e[0] == "sha256" and len(e[1]) == 64
                               for e in entries)
        version = re.search(r"_VERSION = (\S+)", text)
        assert version is not None
        assert any(version.group(1) in e[2] for e in entries), "the source tarball is hashed"
