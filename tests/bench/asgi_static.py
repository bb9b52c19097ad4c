"""A minimal ASGI static file app, to run hypercorn in the benchmarks.

Usage: BENCH_DOCROOT=DIR hypercorn tests.bench.asgi_static:app
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

ROOT = os.environ.get("BENCH_DOCROOT", ".")


async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
              send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    if scope["type"] != "http":
        return
    try:
        with open(os.path.join(ROOT, scope["path"].lstrip("/")), "rb") as f:
            body, status = f.read(), 200
    except OSError:
        body, status = b"not found\n", 404
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()),
                            (b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
