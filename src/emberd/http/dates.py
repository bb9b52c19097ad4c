"""HTTP dates (IMF-fixdate) without the ``email`` package, cached per second."""

from __future__ import annotations

import functools
import time

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")
_MONTH_NUM = {m: i + 1 for i, m in enumerate(_MONTHS)}

_cache_second = -1
_cache_text = ""


@functools.lru_cache(maxsize=64)  # Last-Modified of the files served most
def http_date(ts: int) -> str:
    t = time.gmtime(ts)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def now() -> str:
    """The Date header value for this second."""
    global _cache_second, _cache_text
    second = int(time.time())
    if second != _cache_second:
        _cache_second = second
        _cache_text = http_date(second)
    return _cache_text


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch of an IMF-fixdate (the only form emberd sends), else None."""
    parts = value.split()
    if len(parts) != 6 or parts[5] != "GMT" or not parts[0].endswith(","):
        return None
    try:
        day, month, year = int(parts[1]), _MONTH_NUM[parts[2]], int(parts[3])
        hh, mm, ss = (int(x) for x in parts[4].split(":"))
    except (KeyError, ValueError):
        return None
    if not (1 <= day <= 31 and 0 <= hh < 24 and 0 <= mm < 60 and 0 <= ss <= 60):
        return None
    return (_days_from_civil(year, month, day) * 86400) + hh * 3600 + mm * 60 + ss


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468
