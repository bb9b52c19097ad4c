"""The control API (emberd-control behind emberd) over h2c, mod_auth, and mod_status.

What is not in the image is skipped with the reason (``Features`` in
conftest.py).  Paths, headers and the test user are in device.py.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from tests.h2client import H2Client, StreamResult
from tests.helpers import get

from .device import (
    API_STATUS,
    CHANGE_HEADERS,
    authorization,
    control_setting,
    memory_url,
    upload_path,
)
from .guest import CONTROL_INIT, Guest


def need(condition: bool, what: str) -> None:
    if not condition:
        pytest.skip(f"{what} is not in this image yet")


def h2(guest: Guest, path: str, method: str = "GET", body: bytes | None = None,
       headers: list[tuple[str, str]] | None = None) -> StreamResult:
    c = H2Client(guest.port, timeout=30)
    try:
        hdrs = list(headers or [])
        if body is not None:
            hdrs.append(("content-length", str(len(body))))
        return c.get(path, method=method, body=body, headers=hdrs)
    finally:
        c.close()


def test_control_service_runs(emberd_serving: Guest, features) -> None:  # type: ignore[no-untyped-def]
    need(features.control, "emberd-control")
    rc, out = emberd_serving.sh(f"{CONTROL_INIT} status")
    assert rc == 0 and "emberd-control is running" in out, out


def test_api_status_over_h2c(emberd_serving: Guest, features) -> None:  # type: ignore[no-untyped-def]
    need(features.control, "emberd-control")
    r = h2(emberd_serving, API_STATUS,
           headers=authorization(emberd_serving, "GET", API_STATUS))
    assert r.status == 200, bytes(r.data)
    status = json.loads(bytes(r.data))
    assert status["emberd"]["running"] is True
    assert status["emberd"]["pid"] == emberd_serving.emberd_pid()


def test_upload_over_h2c(emberd_serving: Guest, features) -> None:  # type: ignore[no-untyped-def]
    need(features.control, "emberd-control")
    body = bytes(range(256)) * 16
    path = upload_path("smoke.bin")
    r = h2(emberd_serving, path, "POST", body,
           [*authorization(emberd_serving, "POST", path), *CHANGE_HEADERS])
    assert r.status == 201, bytes(r.data)
    answer = json.loads(bytes(r.data))
    assert answer["size"] == len(body)
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()
    stored = f"{control_setting(emberd_serving.image_dir, 'control.upload-dir')}/smoke.bin"
    assert emberd_serving.check(f"sha256sum {stored}").split()[0] == answer["sha256"]
    # the cross-site guard: a change without X-Requested-With (or Origin) is refused
    r = h2(emberd_serving, path, "POST", body, authorization(emberd_serving, "POST", path))
    assert r.status == 403, bytes(r.data)


def test_api_requires_auth(emberd_serving: Guest, features) -> None:  # type: ignore[no-untyped-def]
    need(features.module("mod_auth"), "mod_auth (in the device configuration)")
    g = emberd_serving
    r = get(g.port, API_STATUS)
    assert r.status == 401, r
    assert r.header("WWW-Authenticate")
    assert h2(g, API_STATUS).status == 401
    wrong = authorization(g, "GET", API_STATUS, password="not-the-password")
    assert h2(g, API_STATUS, headers=wrong).status == 401
    path = upload_path("smoke.bin")
    assert h2(g, path, "POST", b"x" * 10, CHANGE_HEADERS).status == 401


def test_memory_view(emberd_serving: Guest, features) -> None:  # type: ignore[no-untyped-def]
    need(features.module("mod_status"), "mod_status (in the device configuration)")
    url = memory_url(emberd_serving.image_dir)
    r = h2(emberd_serving, url, headers=authorization(emberd_serving, "GET", url))
    assert r.status == 200, bytes(r.data)
    view = json.loads(bytes(r.data))
    assert view["process"]["vmrss_kb"] > 0, view
    assert view["process"]["python_allocator"] == "malloc", view  # S50emberd's default


def test_control_started_again_after_a_crash(emberd_serving: Guest, features) -> None:  # type: ignore[no-untyped-def]
    need(features.control, "emberd-control")
    g = emberd_serving
    old = int(g.check("cat /run/emberd-control.pid"))
    g.check(f"kill -KILL {old}")
    end = time.monotonic() + 60
    while True:
        rc, out = g.sh(f"{CONTROL_INIT} status")
        if rc == 0 and f"(pid {old}," not in out:
            break
        assert time.monotonic() < end, f"emberd-control was not started again: {out}"
        time.sleep(0.5)
    # 503 while the new process starts (and while emberd holds the backend down)
    while (status := h2(g, API_STATUS,
                        headers=authorization(g, "GET", API_STATUS)).status) != 200:
        assert status == 503 and time.monotonic() < end, f"/api/status answers {status}"
        time.sleep(1)
