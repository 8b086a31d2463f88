"""Intervals and tests of the analyses, from `scipy.stats` where it has them.

Bootstrap intervals (`scipy.stats.bootstrap`, percentile method) and the paired sign-flip test
(`scipy.stats.permutation_test`, exact when the resamples cover every sign pattern) are resampled:
their values move within their noise with the seed. McNemar's exact test is computed here in exact
integer arithmetic: `scipy.stats.binomtest` gives the same p-value to 1e-16 but differs in the last
bit for about 4 in 10 discordant-count pairs below 60 (measured), and deterministic results must
not change from one version of this code to the next (`tests/test_statistics.py` holds both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def bootstrap_interval(
    values: Sequence[float] | np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (NaNs dropped; NaN when none is left)."""
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return float("nan"), float("nan")
    if data.size == 1 or np.ptp(data) == 0:  # every resample has the same mean
        return float(data[0]), float(data[0])
    result = stats.bootstrap((data,), np.mean, n_resamples=resamples, confidence_level=level,
                             method="percentile", rng=np.random.default_rng(seed), vectorized=True)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def binomial_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a proportion (NaN without trials)."""
    if trials <= 0:
        return float("nan"), float("nan")
    test = stats.binomtest(int(successes), int(trials))
    interval = test.proportion_ci(confidence_level=level, method="exact")
    return float(interval.low), float(interval.high)


def sign_flip_p(differences: Sequence[float] | np.ndarray, resamples: int = 2000, seed: int = 0) -> float:
    """Two-sided paired permutation p-value that the mean of paired differences is 0 (sign flips)."""
    diffs = np.asarray(differences, dtype=np.float64).ravel()
    if diffs.size == 0:
        return float("nan")
    if diffs.size == 1 or not np.any(diffs):  # one pair: both of its sign patterns are as extreme
        return 1.0
    result = stats.permutation_test((diffs,), np.mean, permutation_type="samples", n_resamples=resamples,
                                    alternative="two-sided", rng=np.random.default_rng(seed),
                                    vectorized=True)
    return float(result.pvalue)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts (binomial, p = 1/2)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))
