"""Progress lines with timings: what the image build is doing, and for how long."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


@contextmanager
def step(what: str) -> Iterator[None]:
    start = time.monotonic()
    say(what + " ...")
    yield
    say(f"{what}: done in {time.monotonic() - start:.1f}s")
