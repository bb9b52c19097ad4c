"""Smoke tests against emberd in a booted QEMU guest (``make qemu-test ARCH=...``).

They need a guest: ``firmware/qemu_test.py`` boots one and runs pytest on this
directory with EMBERD_QEMU_PORT, EMBERD_QEMU_CHANNEL_PORT and EMBERD_QEMU_IMAGE_DIR in
the environment.  Without them a normal ``make test`` run does
not collect these files at all, and asking for them explicitly
(``pytest tests/qemu``) is a usage error that says how to run them --
never a silent skip.

What exists is tested; what does not exist yet (emberd-control, mod_auth,
mod_status) is decided once per session in ``features`` and its tests are
skipped with the reason, so they start running when the feature lands.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from . import device
from .guest import Guest

HERE = Path(__file__).resolve().parent
HAVE_GUEST = bool(os.environ.get("EMBERD_QEMU_PORT"))

# Not collected without a guest (see the module docstring).
collect_ignore_glob = [] if HAVE_GUEST else ["test_*.py"]


def pytest_configure(config: pytest.Config) -> None:
    if HAVE_GUEST:
        return
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            raise pytest.UsageError(
                "tests/qemu needs a booted guest: run `make qemu-test ARCH=aarch64` "
                "(it boots the image and sets EMBERD_QEMU_PORT and EMBERD_QEMU_CHANNEL_PORT)")


@pytest.fixture(scope="session")
def guest() -> Guest:
    g = Guest.from_env()
    g.wait_http(timeout=30)
    device.provision(g)   # the API's test user (the device ships none)
    return g


class Features:
    """What this image has: decides which smoke tests apply."""

    def __init__(self, guest: Guest) -> None:
        commands = guest.manifest.get("commands", [])
        self.control = isinstance(commands, list) and "emberd-control" in commands
        # modules built in (emberd -V) and loaded by the device configuration
        _, out = guest.sh("emberd -V")
        self.built = {line.split()[1] for line in out.splitlines()
                      if line.strip().startswith("+ mod_")}
        conf = guest.check("cat /etc/emberd/emberd.conf")
        self.loaded = {m for m in self.built if f'"{m}"' in conf}

    def module(self, name: str) -> bool:
        return name in self.loaded


@pytest.fixture(scope="session")
def features(guest: Guest) -> Features:
    return Features(guest)


@pytest.fixture
def emberd_serving(guest: Guest) -> Guest:
    """The guest, with emberd answering (a previous test may have restarted it)."""
    guest.wait_http(timeout=40)
    return guest
