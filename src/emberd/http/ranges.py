"""Range requests (RFC 9110 section 14), as lighttpd's ``http_range.c`` handles them.

* Only the ``bytes`` unit is understood; any other unit means the header is
  ignored and the whole file is sent.
* Each range of the set is checked on its own: one that is invalid or
  starts past the end is skipped.  If none is left, the answer is 416.
* Ranges that overlap, or lie less than 80 bytes apart (about the cost of a
  part header), are merged into one; order is otherwise kept.
* At most 128 ranges are considered, and at most 10 when they are not in
  ascending order (many small unordered ranges are a denial-of-service
  pattern).
"""

from __future__ import annotations

# lighttpd's limits (RMAX, RMAX_UNSORTED) and merge distance
MAX_RANGES = 128
MAX_UNSORTED = 10
MERGE_GAP = 80
BOUNDARY = "fkj49sn38dcn3"


def _parse_one(spec: str, length: int) -> tuple[int, int] | None:
    first, dash, last = spec.strip(" \t").partition("-")
    first, last = first.strip(" \t"), last.strip(" \t")
    if not dash:
        return None
    if not first:  # suffix: the last N bytes
        if not last.isdigit() or int(last) == 0:
            return None
        return max(0, length - int(last)), length - 1
    if not first.isdigit():
        return None
    start = int(first)
    if start >= length:
        return None
    if not last:
        return start, length - 1
    if not last.isdigit() or int(last) < start:
        return None
    return start, min(int(last), length - 1)


def parse(value: str, length: int) -> list[tuple[int, int]] | None:
    """The ranges to send, each (first, last) inclusive; [] means 416; None: ignore Range."""
    if value[:6].lower() != "bytes=":
        return None
    out: list[tuple[int, int]] = []
    limit = MAX_RANGES
    for spec in value[6:].split(","):
        r = _parse_one(spec, length)
        if r is None:
            continue
        if out and out[-1][0] <= r[0]:
            if r[0] - MERGE_GAP <= out[-1][1]:
                out[-1] = (out[-1][0], max(out[-1][1], r[1]))
                continue
        elif out:
            limit = MAX_UNSORTED
        out.append(r)
        if len(out) >= limit:
            break
    if limit == MAX_UNSORTED:
        out = _coalesce(out[:MAX_UNSORTED])
    return out


def _coalesce(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge any overlapping or close ranges of an unordered set, keeping first positions."""
    out = list(ranges)
    i = 0
    while i < len(out):
        b, e = out[i]
        for j in range(i + 1, len(out)):
            c, d = out[j]
            if (e < c - MERGE_GAP) if b <= c else (d < b - MERGE_GAP):
                continue
            out[i] = (min(b, c), max(e, d))
            del out[j]
            i = -1
            break
        i += 1
    return out


def part_header(first: int, last: int, length: int, content_type: str | None) -> bytes:
    """The boundary and headers before one part of a multipart/byteranges body."""
    ctype = f"\r\nContent-Type: {content_type}" if content_type else ""
    return (f"\r\n--{BOUNDARY}{ctype}\r\nContent-Range: bytes {first}-{last}/{length}"
            "\r\n\r\n").encode("latin-1")


END = f"\r\n--{BOUNDARY}--\r\n".encode("latin-1")
MULTIPART_TYPE = f"multipart/byteranges; boundary={BOUNDARY}"
