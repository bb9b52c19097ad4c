"""Fixtures that start the real emberd on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Emberd, InProcess


@pytest.fixture
def docroot(tmp_path: Path) -> Path:
    """A small site: index.html, a 1 MiB binary, a subdirectory, a hidden file."""
    www = tmp_path / "www"
    (www / "sub").mkdir(parents=True)
    (www / "empty").mkdir()
    (www / "index.html").write_text("<h1>emberd</h1>\n")
    (www / "sub" / "page.txt").write_text("a page\n")
    (www / "sub" / "index.html").write_text("sub index\n")
    (www / "data.bin").write_bytes(bytes(range(256)) * 4096)
    (www / "notes.inc").write_text("secret\n")
    (www / "empty.txt").write_bytes(b"")
    (www / "ümlaut file.txt").write_text("utf-8 name\n")
    return www


@pytest.fixture
def emberd(tmp_path: Path, docroot: Path) -> Iterator[Callable[..., Emberd]]:
    """emberd(config_text) -> a running server; the docroot is preset (override with :=)."""
    started: list[Emberd] = []

    def start(config: str = "", **kw: object) -> Emberd:
        config = f'server.document-root = "{docroot}"\n' + config
        workdir = tmp_path / f"run{len(started)}"
        workdir.mkdir()
        server = Emberd(workdir, config, **kw)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def inprocess(tmp_path: Path, docroot: Path) -> Iterator[Callable[[str], InProcess]]:
    started: list[InProcess] = []

    def start(config: str = "") -> InProcess:
        config = f'server.document-root = "{docroot}"\n' + config
        workdir = tmp_path / f"inproc{len(started)}"
        workdir.mkdir()
        server = InProcess(config, workdir)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
