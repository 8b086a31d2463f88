"""The statistics of the analyses: scipy's where it has them, known answers, and why McNemar is ours."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from analysis.statistics import bootstrap_interval, mcnemar_p, sign_flip_p


def test_mcnemar_is_exact_and_agrees_with_scipy() -> None:
    for only_a, only_b in itertools.product(range(40), repeat=2):
        if only_a + only_b:
            scipy_p = stats.binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue
            assert mcnemar_p(only_a, only_b) == pytest.approx(scipy_p, rel=1e-12, abs=1e-300)
    assert mcnemar_p(10, 0) == 2 / 1024 and mcnemar_p(0, 0) == 1.0


def test_sign_flip_is_scipys_permutation_test_and_exact_for_small_samples() -> None:
    # 8 pairs: 2^8 = 256 sign patterns, fewer than the resamples, so scipy enumerates them all
    diffs = np.array([0.5, 0.25, 0.75, 1.0, 0.5, -0.25, 0.5, 0.75])
    patterns = np.array(list(itertools.product((-1, 1), repeat=8)))
    means = np.abs((patterns * diffs).mean(axis=1))
    exact = float((means >= abs(diffs.mean()) - 1e-12).mean())
    assert sign_flip_p(diffs, 2000) == pytest.approx(exact)
    assert sign_flip_p([0.3]) == 1.0 and sign_flip_p(np.zeros(5)) == 1.0 and np.isnan(sign_flip_p([]))


def test_bootstrap_interval_covers_the_mean_and_handles_degenerate_samples() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(2.0, 1.0, size=400)
    low, high = bootstrap_interval(values, 2000, seed=5)
    assert low < values.mean() < high and high - low == pytest.approx(2 * 1.96 / 20, rel=0.2)
    assert bootstrap_interval([0.7]) == (0.7, 0.7) and bootstrap_interval([1.0, 1.0]) == (1.0, 1.0)
    assert bootstrap_interval([np.nan, 1.0, 3.0], 500)[0] >= 1.0  # NaNs dropped
    assert all(np.isnan(bootstrap_interval([np.nan])))
