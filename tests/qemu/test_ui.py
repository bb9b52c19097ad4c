"""The device's web UI (rootfs/var/www) from the host, over HTTP/1.1 and h2c."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.h2client import H2Client
from tests.helpers import get

from .device import FALLBACK_UPLOAD
from .guest import Guest


def www(guest: Guest, name: str) -> bytes:
    """The file as it went into the image."""
    return (guest.image_dir / "rootfs" / "var" / "www" / name).read_bytes()


def test_index_over_http11(emberd_serving: Guest) -> None:
    r = get(emberd_serving.port, "/")
    assert r.status == 200
    assert r.body == www(emberd_serving, "index.html")
    assert (r.header("Content-Type") or "").startswith("text/html")


def test_stylesheet_over_http11(emberd_serving: Guest) -> None:
    r = get(emberd_serving.port, "/style.css")
    assert r.status == 200
    assert r.body == www(emberd_serving, "style.css")
    assert (r.header("Content-Type") or "").startswith("text/css")


def test_missing_file_is_404(emberd_serving: Guest) -> None:
    assert get(emberd_serving.port, "/no-such-file.html").status == 404


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_index_over_h2c_with_curl(emberd_serving: Guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "index.html"
    proc = subprocess.run(
        ["curl", "--http2-prior-knowledge", "-sS", "--max-time", "20", "-o", str(out),
         "-w", "%{http_version} %{http_code}", emberd_serving.url + "/"],
        capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "2 200"
    assert out.read_bytes() == www(emberd_serving, "index.html")


def test_ui_over_h2c_on_one_connection(emberd_serving: Guest) -> None:
    c = H2Client(emberd_serving.port, timeout=20)
    try:
        index = c.get("/")
        css = c.get("/style.css")
    finally:
        c.close()
    assert (index.status, css.status) == (200, 200)
    assert bytes(index.data) == www(emberd_serving, "index.html")
    assert bytes(css.data) == www(emberd_serving, "style.css")


def test_post_to_a_static_file_over_h2c(emberd_serving: Guest) -> None:
    """What the bug-#3084 run does until the control API's upload exists."""
    c = H2Client(emberd_serving.port, timeout=20)
    try:
        r = c.get(FALLBACK_UPLOAD, method="POST", body=bytes(4096),
                  headers=[("content-length", "4096")])
    finally:
        c.close()
    assert r.status == 200
    assert bytes(r.data) == www(emberd_serving, FALLBACK_UPLOAD.lstrip("/"))
