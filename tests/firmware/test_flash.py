"""firmware/flash: every refusal, a write + verify, and a failed verify.

The machine's facts (lsblk, mounts, swaps, the disk holding /) are faked
through ``FakeFacts``: no test looks at, or writes to, a real disk.  Writes
go to plain files in tmp_path and, when running as root with losetup, to a
loop device the test creates on such a file.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path

import pytest

FLASH = Path(__file__).resolve().parents[2] / "firmware" / "flash"


def _load():  # type: ignore[no-untyped-def]
    loader = SourceFileLoader("emberd_firmware_flash", str(FLASH))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module   # dataclasses look their module up
    loader.exec_module(module)
    return module


flash = _load()
MiB = 1 << 20


class FakeFacts(flash.SystemFacts):  # type: ignore[misc,name-defined]
    """A made-up machine: one device (whatever path the test uses) and its state."""

    def __init__(self, device, mounts=(), swaps=(), roots=("vda",)):  # type: ignore[no-untyped-def]
        self.device = device
        self._mounts = list(mounts)
        self._swaps = list(swaps)
        self._roots = set(roots)

    def describe(self, path):  # type: ignore[no-untyped-def]
        self.device.path = path
        return self.device

    def mounts(self):  # type: ignore[no-untyped-def]
        return self._mounts

    def swaps(self):  # type: ignore[no-untyped-def]
        return self._swaps

    def root_disks(self):  # type: ignore[no-untyped-def]
        return self._roots


def sd_card(**kw):  # type: ignore[no-untyped-def]
    """A 64 MiB card in a USB reader, two partitions, nothing mounted."""
    facts = dict(path="", kind="disk", name="sdz", disk="sdz", size=64 * MiB,
                 model="Fake SD Reader", tran="usb", devnos={os.makedev(8, 240),
                                                             os.makedev(8, 241),
                                                             os.makedev(8, 242)},
                 partitions=[flash.Partition("sdz1", 16 * MiB, "vfat", "boot"),
                             flash.Partition("sdz2", 48 * MiB, "ext4", "rootfs")])
    facts.update(kw)
    return flash.Device(**facts)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    p = tmp_path / "sdcard.img"
    p.write_bytes(os.urandom(MiB + 12345))   # not a multiple of any block size
    return p


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A path that exists (the check looks for it); the fake facts describe it."""
    p = tmp_path / "fake-device"
    p.write_bytes(b"")
    return p


def refused(image: Path, target: Path, facts: FakeFacts, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(flash.Refused) as exc:
        flash.flash(image, str(target), facts=facts, yes=True, out=lambda s: None, **kw)
    assert target.read_bytes() == b"", "a refused target was written to"
    return str(exc.value)


# -- refusals -------------------------------------------------------------------


def test_refuses_a_device_that_does_not_exist(image: Path, tmp_path: Path) -> None:
    with pytest.raises(flash.Refused, match="does not exist"):
        flash.flash(image, str(tmp_path / "sdq"), facts=FakeFacts(sd_card()), yes=True)
    assert not (tmp_path / "sdq").exists()


def test_refuses_a_device_with_a_mounted_partition(image: Path, target: Path) -> None:
    card = sd_card()
    card.partitions[0].mountpoints = ["/media/boot"]
    assert "sdz1 on /media/boot" in refused(image, target, FakeFacts(card), force=True)


def test_refuses_a_mounted_device(image: Path, target: Path) -> None:
    assert "mounted" in refused(image, target, FakeFacts(sd_card(mountpoints=["/mnt"])))


def test_refuses_a_device_mounted_by_dev_number(image: Path, target: Path) -> None:
    """lsblk may miss a mount (another namespace, a by-uuid source); /proc/mounts does not."""
    facts = FakeFacts(sd_card(), mounts=[("/dev/disk/by-uuid/abcd", "/srv", os.makedev(8, 242))])
    assert "/dev/disk/by-uuid/abcd on /srv" in refused(image, target, facts)


def test_refuses_the_disk_holding_root_even_with_force(image: Path, target: Path) -> None:
    facts = FakeFacts(sd_card(name="vda", disk="vda", tran="virtio"), roots={"vda"})
    assert "holds /" in refused(image, target, facts, force=True)


def test_refuses_a_partition_of_the_root_disk(image: Path, target: Path) -> None:
    facts = FakeFacts(sd_card(kind="part", name="sda2", disk="sda", tran="usb", partitions=[]),
                      roots={"sda"})
    assert "holds /" in refused(image, target, facts, force=True)


@pytest.mark.parametrize("tran", ["sata", "nvme", "virtio", ""])
def test_refuses_a_transport_other_than_usb_or_mmc(image: Path, target: Path,
                                                  tran: str) -> None:
    assert "not usb or mmc" in refused(image, target, FakeFacts(sd_card(tran=tran)))


@pytest.mark.parametrize("tran", ["usb", "mmc"])
def test_accepts_usb_and_mmc(image: Path, target: Path, tran: str) -> None:
    dev = flash.check(str(target), 10, FakeFacts(sd_card(tran=tran)))
    assert dev.tran == tran


def test_force_allows_another_transport(image: Path, target: Path) -> None:
    assert flash.check(str(target), 10, FakeFacts(sd_card(tran="sata")), force=True)


def test_refuses_swap_and_device_mapper(image: Path, target: Path) -> None:
    assert "swap" in refused(image, target, FakeFacts(sd_card(), swaps=[os.makedev(8, 241)]))
    assert "dm-0" in refused(image, target, FakeFacts(sd_card(holders=["dm-0"])))


def test_refuses_a_partition_read_only_or_too_small(image: Path, target: Path) -> None:
    assert "partition" in refused(image, target, FakeFacts(sd_card(kind="part", partitions=[])))
    assert "read-only" in refused(image, target, FakeFacts(sd_card(ro=True)))
    assert "does not fit" in refused(image, target, FakeFacts(sd_card(size=MiB)))


def test_refuses_without_confirmation(image: Path, target: Path) -> None:
    shown: list[str] = []
    with pytest.raises(flash.Refused, match="not confirmed"):
        flash.flash(image, str(target), facts=FakeFacts(sd_card()), confirm=lambda _: False,
                    out=shown.append)
    assert target.read_bytes() == b""
    # what the user was asked about: model, size, partitions
    text = "\n".join(shown)
    assert "Fake SD Reader" in text and "64.0 MiB" in text
    assert "sdz1" in text and "vfat" in text and '"rootfs"' in text


def test_cli_refuses_without_a_terminal_or_yes(image: Path, target: Path, monkeypatch,
                                               capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))   # not a terminal
    rc = flash.main([str(image), str(target)], facts=FakeFacts(sd_card()))
    assert rc == flash.EXIT_REFUSED
    assert "no confirmation" in capsys.readouterr().err
    assert target.read_bytes() == b""


# -- writing and verifying ------------------------------------------------------------


def test_writes_and_verifies_a_file(image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.img"
    out.write_bytes(b"old contents that are longer than nothing" * 100)
    said: list[str] = []
    flash.flash(image, str(out), yes=True, out=said.append)
    assert out.read_bytes() == image.read_bytes()
    assert "written and verified" in said[-1]


def test_verify_failure_is_reported(image: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.img"
    out.write_bytes(b"")

    def corrupt(dev) -> None:  # type: ignore[no-untyped-def]
        with open(dev.path, "r+b") as f:
            f.seek(MiB // 2)
            byte = f.read(1)
            f.seek(MiB // 2)
            f.write(bytes([byte[0] ^ 0xFF]))

    with pytest.raises(flash.VerifyError, match="verification FAILED"):
        flash.flash(image, str(out), yes=True, after_write=corrupt, out=lambda s: None)


def test_cli_reports_a_verify_failure_with_exit_3(image: Path, tmp_path: Path, monkeypatch,
                                                  capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.img"
    out.write_bytes(b"")
    real_write = flash.write

    def short_write(img, dev):  # type: ignore[no-untyped-def]
        digest = real_write(img, dev)
        os.truncate(dev.path, MiB)   # the "card" lost its tail
        return digest

    monkeypatch.setattr(flash, "write", short_write)
    rc = flash.main([str(image), str(out), "--yes"])
    assert rc == flash.EXIT_VERIFY
    assert "ended after" in capsys.readouterr().err


@pytest.fixture
def loop_device(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A loop device on a 4 MiB file of this test (root and losetup only)."""
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("loop devices need root and losetup")
    backing = tmp_path / "loop-backing.img"
    backing.write_bytes(b"\0" * (4 * MiB))
    proc = subprocess.run(["losetup", "--find", "--show", str(backing)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"losetup does not work here: {proc.stderr.strip()}")
    dev = proc.stdout.strip()
    try:
        yield dev, backing
    finally:
        subprocess.run(["losetup", "--detach", dev], check=False)


def test_writes_and_verifies_a_loop_device(image: Path, loop_device) -> None:  # type: ignore[no-untyped-def]
    dev, backing = loop_device
    # a loop device has no transport: refused unless --force
    with pytest.raises(flash.Refused, match="not usb or mmc"):
        flash.flash(image, dev, yes=True, out=lambda s: None)
    said: list[str] = []
    flash.flash(image, dev, yes=True, force=True, out=said.append)
    assert "written and verified (O_DIRECT)" in said[-1]
    data = image.read_bytes()
    with open(backing, "rb") as f:
        assert f.read(len(data)) == data
