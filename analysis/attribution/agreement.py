"""Agreement of maps: Spearman rank correlation of methods on one model, or models under one method."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["agreement_rows", "agreement_table", "rank_correlation"]


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same shape (average ranks for ties)."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"maps of {x.size} and {y.size} values cannot be compared")
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 with tied values sharing their mean rank (as Spearman's rho needs)."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # boundaries of runs of equal values
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], values.size]
    mean_rank = (starts + ends - 1) / 2.0
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def agreement_table(maps: dict[str, np.ndarray]) -> np.ndarray:
    """Pairwise rank correlations of named maps (methods of one model, or models on one clip)."""
    names = list(maps)
    table = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            table[i, j] = table[j, i] = rank_correlation(maps[names[i]], maps[names[j]])
    return table


def agreement_rows(between: str, within: str, maps: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per pair of named maps: their rank correlation (`between` methods or models)."""
    names = list(maps)
    table = agreement_table(maps)
    return [{"between": between, "within": within, "a": names[i], "b": names[j],
             "rank_correlation": float(table[i, j])}
            for i in range(len(names)) for j in range(i + 1, len(names))]
