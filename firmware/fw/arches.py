"""What differs between the test-image architectures, in one table.

Everything else in ``firmware/`` is written once and reads these facts: the
Debian architecture and kernel meta-package, the GNU triplet (library
directories, extension-module suffixes, cross compilers), the pip platform
tags, which packages have no wheel and are cross-built, and how QEMU boots
the result.  ``reference/qemu.md`` is where these values were found to work.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str                 # ARCH= on the make command line
    deb_arch: str             # Debian's name
    triplet: str              # GNU triplet: /usr/lib/<triplet>, *.cpython-311-<triplet>.so
    kernel_meta: str          # Debian meta-package that depends on the current kernel
    kernel_glob: str          # the kernel image inside the kernel .deb
    pip_platforms: tuple[str, ...]
    cross_built: tuple[str, ...]   # PyPI projects without a usable wheel: built from sdist
    qemu_system: str
    qemu_machine: str
    qemu_cpu: str
    qemu_user: str            # qemu-user binary for the pre-boot import check
    console: str = "ttyAMA0"  # PL011 on QEMU's virt board
    ld_so: str = ""           # the dynamic loader, for the pre-boot check

    @property
    def cc(self) -> str:
        return f"{self.triplet}-gcc"

    @property
    def cxx(self) -> str:
        return f"{self.triplet}-g++"

    @property
    def ext_suffix(self) -> str:
        return f".cpython-311-{self.triplet}.so"


ARCHES: dict[str, Arch] = {
    "aarch64": Arch(
        name="aarch64", deb_arch="arm64", triplet="aarch64-linux-gnu",
        kernel_meta="linux-image-arm64", kernel_glob="boot/vmlinuz-*",
        pip_platforms=("manylinux2014_aarch64", "manylinux_2_17_aarch64",
                       "manylinux_2_28_aarch64"),
        # python-mbedtls has no ARM wheel at all (reference/qemu.md)
        cross_built=("python-mbedtls",),
        qemu_system="qemu-system-aarch64", qemu_machine="virt",
        # no pointer authentication: -cpu max is much slower under TCG
        qemu_cpu="cortex-a57", qemu_user="qemu-aarch64-static",
        ld_so="/lib/ld-linux-aarch64.so.1",
    ),
    "armhf": Arch(
        name="armhf", deb_arch="armhf", triplet="arm-linux-gnueabihf",
        kernel_meta="linux-image-armmp", kernel_glob="boot/vmlinuz-*",
        pip_platforms=("manylinux2014_armv7l", "manylinux_2_17_armv7l",
                       "manylinux_2_28_armv7l", "linux_armv7l"),
        # neither python-mbedtls nor ujson publishes an armv7l wheel
        cross_built=("python-mbedtls", "ujson"),
        qemu_system="qemu-system-arm",
        # the armmp kernel has no LPAE: keep the PCIe ECAM window below 4 GiB
        qemu_machine="virt,highmem=off",
        qemu_cpu="cortex-a15", qemu_user="qemu-arm-static",
        ld_so="/lib/ld-linux-armhf.so.3",
    ),
}


def get(name: str) -> Arch:
    try:
        return ARCHES[name]
    except KeyError:
        raise SystemExit(f"unknown ARCH {name!r}: use one of {', '.join(ARCHES)}") from None
