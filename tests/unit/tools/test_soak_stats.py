"""The soak's slope and confidence-interval arithmetic, against values worked out by hand,
closed forms and published tables of Student's t."""

from __future__ import annotations

import math
import random

import pytest

from emberd.tools.soak_stats import betainc, fit_line, t_cdf, t_quantile


@pytest.mark.parametrize("df, expected", [
    # two-sided 95 % critical values, as printed in every table of Student's t
    (1, 12.7062047), (2, 4.3026527), (3, 3.1824463), (4, 2.7764451), (5, 2.5705818),
    (10, 2.2281389), (20, 2.0859634), (30, 2.0422725), (60, 2.0002978), (120, 1.9799304),
    (1_000_000, 1.9599664),
])
def test_t_quantile_matches_the_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-6)


def test_t_quantile_is_symmetric_and_has_its_median_at_zero():
    assert t_quantile(0.5, 7) == 0.0
    assert t_quantile(0.025, 7) == pytest.approx(-t_quantile(0.975, 7), abs=1e-12)
    assert t_quantile(0.995, 10) == pytest.approx(3.1692727, abs=1e-6)  # the 99 % column


@pytest.mark.parametrize("t", [-5.0, -1.0, -0.3, 0.0, 0.3, 1.0, 2.5, 40.0])
def test_t_cdf_closed_forms(t):
    # df = 1 is the Cauchy distribution, df = 2 has an algebraic CDF
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_t_cdf_inverts_t_quantile():
    for df in (1, 3, 9, 58, 270):
        for p in (0.6, 0.9, 0.975, 0.999):
            assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-10)


@pytest.mark.parametrize("a, b, x", [(0.5, 0.5, 0.2), (3.0, 1.0, 0.7), (1.0, 1.0, 0.35),
                                     (2.0, 3.0, 0.9), (150.0, 0.5, 0.99)])
def test_incomplete_beta_closed_forms(a, b, x):
    if b == 1.0:
        expected = x ** a
    elif (a, b) == (0.5, 0.5):
        expected = 2 / math.pi * math.asin(math.sqrt(x))
    elif (a, b) == (2.0, 3.0):  # I_x(2, 3) = 6x^2 - 8x^3 + 3x^4
        expected = 6 * x**2 - 8 * x**3 + 3 * x**4
    else:  # compare the two sides of the symmetry I_x(a, b) = 1 - I_{1-x}(b, a)
        expected = 1 - betainc(b, a, 1 - x)
    assert betainc(a, b, x) == pytest.approx(expected, abs=1e-12)
    assert betainc(a, b, 0.0) == 0.0 and betainc(a, b, 1.0) == 1.0


def test_fit_worked_by_hand():
    """x = 0..4, y = 1 3 2 5 4: mean x 2, mean y 3, Sxx 10, Sxy 8, so the slope is 0.8 and
    the intercept 1.4; the residuals -0.4 0.8 -1.0 1.2 -0.6 give SSR 3.6, s^2 = 1.2 on 3
    degrees of freedom, se = sqrt(1.2 / 10); t(0.975, 3) = 3.1824463."""
    fit = fit_line([0, 1, 2, 3, 4], [1, 3, 2, 5, 4])
    assert fit.slope == pytest.approx(0.8)
    assert fit.intercept == pytest.approx(1.4)
    assert fit.n == 5
    assert fit.stderr == pytest.approx(math.sqrt(0.12))
    half = 3.1824463 * math.sqrt(0.12)
    assert fit.low == pytest.approx(0.8 - half, abs=1e-6)
    assert fit.high == pytest.approx(0.8 + half, abs=1e-6)
    assert fit.half_width == pytest.approx(half, abs=1e-6)


def test_a_flat_series_has_slope_zero_and_no_width():
    """RSS that does not move: the soak's hoped-for case."""
    minutes = [i / 30 for i in range(300)]
    fit = fit_line(minutes, [20_480.0] * 300)
    assert fit.slope == 0.0 and fit.low == 0.0 and fit.high == 0.0


def test_an_exact_line_is_recovered():
    minutes = [1 + i / 30 for i in range(270)]  # 9 minutes sampled every 2 s
    fit = fit_line(minutes, [21_000 + 150 * m for m in minutes])  # lighttpd 1.4.59's growth
    assert fit.slope == pytest.approx(150.0)
    assert fit.intercept == pytest.approx(21_000.0)
    assert fit.half_width == pytest.approx(0.0, abs=1e-6)


def test_the_interval_scales_with_the_confidence():
    xs = [0, 1, 2, 3, 4]
    ys = [1, 3, 2, 5, 4]
    wide, narrow = fit_line(xs, ys, 0.99), fit_line(xs, ys, 0.80)
    assert wide.half_width / narrow.half_width == pytest.approx(
        t_quantile(0.995, 3) / t_quantile(0.9, 3))


def test_the_interval_covers_the_true_slope_about_95_percent_of_the_time():
    rng = random.Random(3084)
    xs = [i / 30 for i in range(40)]
    covered = 0
    for _ in range(400):
        fit = fit_line(xs, [5.0 + 2.0 * x + rng.gauss(0, 3) for x in xs])
        covered += fit.low <= 2.0 <= fit.high
    assert 0.92 <= covered / 400 <= 0.98


def test_two_points_give_a_line_but_no_interval():
    fit = fit_line([0, 2], [10, 14])
    assert fit.slope == 2.0 and fit.intercept == 10.0
    assert math.isnan(fit.low) and math.isnan(fit.high) and math.isnan(fit.stderr)


@pytest.mark.parametrize("xs, ys", [([], []), ([1.0], [2.0]), ([3, 3, 3], [1, 2, 3]),
                                    ([1, 2], [1, 2, 3])])
def test_degenerate_input_is_refused(xs, ys):
    with pytest.raises(ValueError):
        fit_line(xs, ys)


@pytest.mark.parametrize("p, df", [(0.0, 3), (1.0, 3), (0.5, 0), (1.5, 2)])
def test_bad_arguments(p, df):
    with pytest.raises(ValueError):
        t_quantile(p, df)
