"""A small L2-regularised logistic regression and grouped cross-validation folds, in torch float64.

Written here rather than taken from scikit-learn: one binary probe with a fixed solver (full-batch
L-BFGS on standardised features) is ~40 lines, runs in milliseconds on a few hundred pooled feature
vectors, is deterministic, and adds no dependency to the product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LogisticProbe:
    """A fitted probe: standardisation of its training features, then weights and bias."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: float

    def decision(self, features: np.ndarray) -> np.ndarray:
        """The logit of class 1 for each row of `features`."""
        return ((features - self.mean) / self.scale) @ self.weight + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Class 1 where the logit is positive, else 0 (a row's prediction depends on that row alone)."""
        return (self.decision(features) > 0).astype(int)


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, l2: float = 1e-2, steps: int = 100
) -> LogisticProbe:
    """Minimise the mean log-loss + l2/2 |w|^2 over standardised features (constant columns stay 0)."""
    x = np.asarray(features, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    inputs = torch.from_numpy((x - mean) / scale)
    targets = torch.from_numpy(np.asarray(labels, dtype=np.float64))
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, tolerance_grad=1e-10,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(inputs @ weight + bias, targets)
        loss = loss + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return LogisticProbe(mean, scale, weight.detach().numpy().copy(), float(bias.detach()))


def grouped_folds(groups: int, folds: int, seed: int = 0) -> np.ndarray:
    """Fold number of each of `groups` groups: a seeded shuffle dealt round-robin into `folds` folds."""
    if groups < 2:
        raise ValueError(f"cross-validation needs at least 2 groups, got {groups}")
    folds = min(folds, groups)
    order = np.random.default_rng(seed).permutation(groups)
    assignment = np.empty(groups, dtype=int)
    assignment[order] = np.arange(groups) % folds
    return assignment
