"""Static and dynamic bias per layer: Kowal et al.'s estimate (CVPR 2022) on probe pairs.

Kowal et al. measure how much of a layer encodes a factor by the correlation of its features over pairs
of videos that share that factor, normalised by the features' total variance (an estimate of mutual
information after Esser et al.), then turn the factors' scores and a residual of 1 into shares of the
layer's dimensions with a softmax; per unit (channel) the same correlation, normalised by the unit's own
variance, classifies the unit as static, dynamic, joint (both above a threshold, 0.5) or neither.

Pairs come from the probe generator (`workbench.probe.write_pair_dataset`): appearance pairs are a clip
and its own reverse (the same frames, the motion reversed), motion pairs two clips of one track with
independent looks. With pooled features z (`analysis.layer_features`), V the summed variance of all pair
members' features, and m a factor's mean over its pair members:

    static  = sum_d mean_pairs (z_a - m)(z_b - m) / V                    over appearance pairs
    dynamic = sum_d mean_pairs (z_a - m)(z_b - z_rev(b)) / V             over motion pairs

The dynamic score subtracts from Kowal's correlation of same-motion clips the correlation with the second
clip played backwards: a track also carries static information (where the object is, the silhouettes it
takes), which the reversed clip keeps; what is left is shared through the order alone. For features that
cannot see order z_b == z_rev(b) bit for bit (run in one batch, pooled order-invariantly), so the dynamic
score of TSN's consensus (and of any order-blind layer) is exactly 0. Kowal's uncontrolled dynamic
correlation is kept as `dynamic_uncontrolled`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.errors import AnalysisError
from workbench.probe import PAIRS_FILE
from workbench.progress import Progress
from workbench.video import load_clip

from .layer_features import evenly_spaced, pooled_layers

SUMMARY_COLUMNS = ["model", "layer", "static", "dynamic", "static_share", "dynamic_share", "static_units",
                   "dynamic_units", "joint_units", "dynamic_uncontrolled"]
UNIT_THRESHOLD = 0.5  # Kowal et al.'s joint-encoding threshold on a unit's correlation


@dataclass
class StaticDynamicResult:
    """Per model and layer: scores, dimension shares and unit shares (`summary`); per unit (`units`)."""

    summary: pd.DataFrame
    units: pd.DataFrame
    pairs: dict[str, int]


def read_pairs(data: str | Path) -> list[tuple[str, str, Path, Path | None]]:
    """(kind, class, a, b or None) of a pair set written by `probe-data OUT --pairs`."""
    root = Path(data)
    path = root / PAIRS_FILE
    if not path.is_file():
        raise AnalysisError(f"{root}: no {PAIRS_FILE}; make a pair set with "
                            "`python -m workbench probe-data OUT --pairs`")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [(r["kind"], r["class"], root / r["a"], root / r["b"] if r["b"] else None)
                    for r in csv.DictReader(handle)]
    except (KeyError, csv.Error, UnicodeDecodeError) as err:
        raise AnalysisError(f"{path}: not a pair list with columns kind, class, a, b ({err})") from None
    for kind, _, _, b in rows:
        if kind not in ("appearance", "motion") or (kind == "motion") != (b is not None):
            raise AnalysisError(f"{path}: a {kind!r} pair with b={b}; kinds: appearance (no b), "
                                "motion (a, b)")
    return rows


def _correlation(first: np.ndarray, second: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: mean over pairs of (first - m) * second, and the variance of `members` (m their mean)."""
    mean = members.mean(axis=0)
    return ((first - mean) * second).mean(axis=0), members.var(axis=0)


def scores(
    appearance: tuple[np.ndarray, np.ndarray], motion: tuple[np.ndarray, np.ndarray, np.ndarray],
    threshold: float = UNIT_THRESHOLD,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Layer scores and per-unit scores from features (pairs, C): appearance (a, reverse of a) and
    motion (a, b, reverse of b)."""
    sa, sb = appearance
    ma, mb, mr = motion
    everything = np.concatenate((sa, sb, ma, mb))
    total = everything.var(axis=0).sum()
    s_members, m_members = np.concatenate((sa, sb)), np.concatenate((ma, mb))
    static_cov, static_var = _correlation(sa, sb - s_members.mean(axis=0), s_members)
    dynamic_cov, dynamic_var = _correlation(ma, mb - mr, m_members)
    plain_cov, _ = _correlation(ma, mb - m_members.mean(axis=0), m_members)
    layer = {"static": static_cov.sum() / total if total > 0 else 0.0,
             "dynamic": dynamic_cov.sum() / total if total > 0 else 0.0,
             "dynamic_uncontrolled": plain_cov.sum() / total if total > 0 else 0.0}
    exp = np.exp(np.array([layer["static"], layer["dynamic"], 1.0]))  # Kowal's softmax with a residual 1
    layer["static_share"], layer["dynamic_share"] = exp[:2] / exp.sum()
    unit_static = np.divide(static_cov, static_var, out=np.zeros_like(static_cov), where=static_var > 0)
    unit_dynamic = np.divide(dynamic_cov, dynamic_var, out=np.zeros_like(dynamic_cov), where=dynamic_var > 0)
    high_s, high_d = unit_static > threshold, unit_dynamic > threshold
    encodes = np.select([high_s & high_d, high_s, high_d], ["joint", "static", "dynamic"], "none")
    for kind in ("static", "dynamic", "joint"):
        layer[f"{kind}_units"] = float((encodes == kind).mean())
    units = pd.DataFrame({"unit": np.arange(unit_static.size), "static": unit_static, "dynamic": unit_dynamic,
                          "encodes": encodes})
    return {k: float(v) for k, v in layer.items()}, units


def _features(model: nn.Module, pairs: list[tuple[str, str, Path, Path | None]], kind: str, batch_pairs: int,
              tick: Callable[[int], None]) -> dict[str, list[np.ndarray]]:
    """Per layer, the pooled features (pairs, members, C) of one kind's pairs, each pair in one batch."""
    chosen = [p for p in pairs if p[0] == kind]
    members = 2 if kind == "appearance" else 3
    found: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(chosen), batch_pairs):
        part = chosen[start : start + batch_pairs]
        clips = []
        for _, _, a, b in part:
            first = load_clip(a, model.spec)
            if b is None:  # a clip and its reverse
                clips += [first, first.flip(1)]
            else:  # two looks of one motion, and the second played backwards
                second = load_clip(b, model.spec)
                clips += [first, second, second.flip(1)]
        for name, value in pooled_layers(model, torch.cat(clips)).items():
            found.setdefault(name, []).append(value.reshape(len(part), members, -1))
        tick(len(part))
    return found


def static_dynamic(
    models: Mapping[str, nn.Module], data: str | Path, threshold: float = UNIT_THRESHOLD,
    max_pairs: int | None = None, batch_pairs: int = 8, progress: Progress | None = None,
) -> StaticDynamicResult:
    """Static and dynamic scores of every model's layers on the pair set `data`."""
    pairs = read_pairs(data)
    kept = [pair for kind in ("appearance", "motion")
            for pair in evenly_spaced([p for p in pairs if p[0] == kind], max_pairs)]
    counts = {kind: sum(p[0] == kind for p in kept) for kind in ("appearance", "motion")}
    if min(counts.values()) < 2:
        raise AnalysisError(f"{data}: {counts} pairs; the estimate needs at least 2 of each kind")
    total, done = len(models) * len(kept), [0]

    def tick(count: int) -> None:
        done[0] += count
        if progress is not None:
            progress(done[0], total)

    summary, units = [], []
    for label, model in models.items():
        appearance = _features(model, kept, "appearance", batch_pairs, tick)
        motion = _features(model, kept, "motion", batch_pairs, tick)
        for name in appearance:
            a, m = np.concatenate(appearance[name]), np.concatenate(motion[name])
            layer, per_unit = scores((a[:, 0], a[:, 1]), (m[:, 0], m[:, 1], m[:, 2]), threshold)
            summary.append({"model": label, "layer": name, **layer})
            units.append(per_unit.assign(model=label, layer=name))
    unit_columns = ["model", "layer", "unit", "static", "dynamic", "encodes"]
    unit_table = pd.concat(units, ignore_index=True)[unit_columns]
    return StaticDynamicResult(pd.DataFrame(summary)[SUMMARY_COLUMNS], unit_table, counts)
