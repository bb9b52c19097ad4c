"""The arithmetic of the soak report: a least-squares slope and its confidence interval.

Theory of operation: RSS samples ``(t, rss)`` taken every few seconds are
fitted with a straight line ``rss = a + b * t`` by ordinary least squares.
The slope ``b`` (KB per minute when ``t`` is in minutes) is the growth
rate; its standard error is

    se(b) = sqrt( (SSR / (n - 2)) / Sxx )

with ``SSR`` the sum of squared residuals and ``Sxx`` the sum of squared
deviations of ``t`` from its mean.  The two-sided interval at confidence
``c`` is ``b ± t_q * se(b)`` where ``t_q`` is the ``(1 + c) / 2`` quantile
of Student's t distribution with ``n - 2`` degrees of freedom.

The quantile is computed here rather than taken from scipy (not a
dependency): Student's t CDF is expressed through the regularized
incomplete beta function, ``I_x(a, b)``, evaluated with the continued
fraction of Numerical Recipes (``betacf``, modified Lentz), and inverted
by bisection -- a few hundred evaluations, exact to 1e-10.

Caveat, stated in the report: successive RSS samples are not independent
(RSS moves in page steps and stays put between them), so the interval is
the textbook one and is optimistic; it says how well a line fits, not how
sure a months-long extrapolation is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_CF_MAX_ITERATIONS = 300  # betacf converges in O(sqrt(max(a, b))) steps; 300 covers df < 10^4
_CF_EPSILON = 3e-16
_TINY = 1e-300  # keeps Lentz's method away from division by zero


@dataclass(frozen=True, slots=True)
class Fit:
    """A least-squares line through ``n`` points and the interval of its slope."""

    slope: float
    intercept: float
    n: int
    stderr: float  # standard error of the slope (nan when n < 3)
    low: float  # lower end of the slope's confidence interval (nan when n < 3)
    high: float  # upper end
    confidence: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _CF_MAX_ITERATIONS + 1):
        m2 = 2 * m
        # even step
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        # odd step
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _CF_EPSILON:
            return h
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], not {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    # the continued fraction converges quickly for x < (a + 1) / (a + b + 2); use the
    # symmetry I_x(a, b) = 1 - I_{1-x}(b, a) on the other side
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, not {df}")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on t_cdf)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), not {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, not {df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    lo, hi = 0.0, 2.0
    while t_cdf(hi, df) < p:  # the quantile is finite: this doubles a few dozen times at most
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


def fit_line(xs: Sequence[float], ys: Sequence[float], confidence: float = 0.95) -> Fit:
    """Ordinary least squares of ``ys`` on ``xs`` with a two-sided interval for the slope.

    ValueError with fewer than two points or when all ``xs`` are equal; with
    exactly two points the line is exact and the interval is undefined (nan).
    """
    n = len(xs)
    if n != len(ys):
        raise ValueError(f"{n} x values but {len(ys)} y values")
    if n < 2:
        raise ValueError("a line needs at least two points")
    mean_x = math.fsum(xs) / n
    mean_y = math.fsum(ys) / n
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    if sxx == 0.0:
        raise ValueError("all x values are equal: the slope is undefined")
    sxy = math.fsum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    if n < 3:
        nan = float("nan")
        return Fit(slope, intercept, n, nan, nan, nan, confidence)
    ssr = math.fsum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    stderr = math.sqrt(ssr / (n - 2) / sxx)
    half = t_quantile((1.0 + confidence) / 2.0, n - 2) * stderr
    return Fit(slope, intercept, n, stderr, slope - half, slope + half, confidence)
