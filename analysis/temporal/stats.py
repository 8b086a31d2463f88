"""Statistics of a frame-order experiment: summary with intervals, per-class sensitivity, model pairs.

Statistics are over videos: a video's repeats (several shuffles of one clip) are not independent,
so bootstrap intervals resample videos, and model comparisons pair the same videos.
"""

from __future__ import annotations

import itertools
import zlib

import pandas as pd

from ..statistics import bootstrap_interval, mcnemar_p, sign_flip_p
from .config import ExperimentResult

__all__ = ["COMPARISON_COLUMNS", "analyse", "class_sensitivity", "compare_models", "reverse_confusion",
    "summarize", "sweep_curve"]

COMPARISON_COLUMNS = ["perturbation", "model_a", "model_b", "videos", "sensitivity_a", "sensitivity_b",
                      "difference", "ci_low", "ci_high", "p_value", "only_a_flips", "only_b_flips",
                      "mcnemar_p"]


def _per_video(results: pd.DataFrame, column: str) -> pd.Series:
    """Mean of `column` per (model, perturbation, level, video): a video's repeats averaged."""
    keys = ["model", "perturbation", "level", "video_index"]
    return results.groupby(keys, sort=False)[column].mean()


def summarize(results: pd.DataFrame, bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per model x perturbation (x sweep level): accuracy with a 95% bootstrap interval over videos,
    change vs the original order (paired interval), flip rate, mean KL, mirror rate, by class kind."""
    if results.empty:
        return pd.DataFrame()
    correct = _per_video(results.assign(correct=results["correct"].astype(float)), "correct").sort_index()
    original = correct.xs("original", level="perturbation").droplevel("level")
    originals = results[results["perturbation"] == "original"]
    original_by_kind = originals.groupby(["model", "class_kind"])["correct"].mean()
    rows = []
    groups = results.groupby(["model", "perturbation", "level"], sort=False)
    for (model, perturbation, level), frame in groups:
        videos = correct.loc[(model, perturbation, level)]
        base = original.loc[model].reindex(videos.index)
        change = videos - base
        rng_seed = seed + zlib.crc32(f"{model}|{perturbation}|{level}".encode())
        low, high = bootstrap_interval(videos.to_numpy(), bootstrap, rng_seed)
        change_low, change_high = bootstrap_interval(change.to_numpy(), bootstrap, rng_seed + 1)
        with_mirror = frame["mirror"] >= 0
        row = {
            "model": model,
            "scheme": frame["scheme"].iloc[0],
            "perturbation": perturbation,
            "level": level,
            "videos": int(videos.size),
            "clips": int(len(frame)),
            "accuracy": float(videos.mean()),
            "ci_low": low,
            "ci_high": high,
            "change": float(change.mean()),
            "change_low": change_low,
            "change_high": change_high,
            "flip_rate": float(frame["flip"].mean()),
            "mean_kl": float(frame["kl"].mean()),
            "p_true": float(frame["p_true"].mean()),
            "mirror_rate": float(frame.loc[with_mirror, "predicted_mirror"].mean()) if with_mirror.any()
            else float("nan"),
        }
        by_kind = frame.groupby("class_kind")["correct"].mean()
        for kind in ("temporal", "static"):
            accuracy = float(by_kind.get(kind, float("nan")))
            row[f"{kind}_accuracy"] = accuracy
            row[f"{kind}_change"] = accuracy - float(original_by_kind.get((model, kind), float("nan")))
        rows.append(row)
    return pd.DataFrame(rows)


def class_sensitivity(results: pd.DataFrame) -> pd.DataFrame:
    """Per model x class x perturbation (sweep levels pooled): accuracy, change vs original,
    flip rate, mean KL and how often the mirror class is predicted."""
    if results.empty:
        return pd.DataFrame()
    keys = ["model", "class_name", "perturbation"]
    grouped = results.groupby(keys, sort=False)
    table = grouped.agg(
        kind=("class_kind", "first"),
        videos=("video_index", "nunique"),
        accuracy=("correct", "mean"),
        flip_rate=("flip", "mean"),
        mean_kl=("kl", "mean"),
        mirror_rate=("predicted_mirror", "mean"),
    ).reset_index()
    original = table[table["perturbation"] == "original"].set_index(["model", "class_name"])["accuracy"]
    base = original.reindex(pd.MultiIndex.from_frame(table[["model", "class_name"]])).to_numpy()
    table["original_accuracy"] = base
    table["change"] = table["accuracy"] - base
    return table


def compare_models(results: pd.DataFrame, bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Paired comparison of order sensitivity between every two models on the same videos.

    Sensitivity of a video = original correct (0/1) - mean correct under the perturbation. The
    difference (model_a - model_b) gets a bootstrap interval over videos and a sign-flip p-value.
    McNemar compares how often each model's top-1 answer flips on the same videos (draw 0): videos
    where only one of the two flips are the evidence."""
    if results.empty:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    models = list(dict.fromkeys(results["model"]))
    orig = results[results["perturbation"] == "original"].set_index(["model", "video_index"])["correct"]
    pert = results[(results["perturbation"] != "original")
                   & ~((results["perturbation"] == "sweep") & (results["level"] == 0.0))]
    correct = pert.assign(correct=pert["correct"].astype(float)).groupby(
        ["model", "perturbation", "video_index"])["correct"].mean()
    flips = pert[pert["repeat"] == 0].groupby(["model", "perturbation", "video_index"])["flip"].first()
    rows = []
    for perturbation in dict.fromkeys(pert["perturbation"]):
        for model_a, model_b in itertools.combinations(models, 2):
            try:
                a = correct.loc[(model_a, perturbation)]
                b = correct.loc[(model_b, perturbation)]
            except KeyError:
                continue
            videos = a.index.intersection(b.index)
            sens_a = orig.loc[model_a].reindex(videos).astype(float) - a.reindex(videos)
            sens_b = orig.loc[model_b].reindex(videos).astype(float) - b.reindex(videos)
            diff = (sens_a - sens_b).to_numpy()
            rng_seed = seed + zlib.crc32(f"{model_a}|{model_b}|{perturbation}".encode())
            low, high = bootstrap_interval(diff, bootstrap, rng_seed)
            flips_a = flips.loc[(model_a, perturbation)].reindex(videos).astype(bool)
            flips_b = flips.loc[(model_b, perturbation)].reindex(videos).astype(bool)
            only_a, only_b = int((flips_a & ~flips_b).sum()), int((~flips_a & flips_b).sum())
            rows.append({
                "perturbation": perturbation, "model_a": model_a, "model_b": model_b,
                "videos": int(len(videos)),
                "sensitivity_a": float(sens_a.mean()), "sensitivity_b": float(sens_b.mean()),
                "difference": float(diff.mean()), "ci_low": low, "ci_high": high,
                "p_value": sign_flip_p(diff, bootstrap, rng_seed + 1),
                "only_a_flips": only_a, "only_b_flips": only_b,
                "mcnemar_p": mcnemar_p(only_a, only_b),
            })
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def sweep_curve(results: pd.DataFrame) -> pd.DataFrame:
    """Sweep accuracy per model and Kendall-tau distance (the distance reached for the clip length)."""
    sweep = results[results["perturbation"] == "sweep"]
    if sweep.empty:
        return pd.DataFrame(columns=["model", "level", "accuracy", "videos"])
    return (sweep.groupby(["model", "level"], sort=False)
            .agg(accuracy=("correct", "mean"), videos=("video_index", "nunique"))
            .reset_index().sort_values(["model", "level"], kind="stable"))


def reverse_confusion(results: pd.DataFrame, model: str) -> pd.DataFrame:
    """Counts of true class (rows) x predicted class (columns) under time reversal for one model."""
    rows = results[(results["model"] == model) & (results["perturbation"] == "reverse")]
    return pd.crosstab(rows["class_name"], rows["prediction_name"])


def analyse(results: pd.DataFrame, bootstrap: int = 2000, seed: int = 0) -> ExperimentResult:
    """Summary, class sensitivity and model comparisons computed from a results table."""
    return ExperimentResult(
        results=results,
        summary=summarize(results, bootstrap, seed),
        class_sensitivity=class_sensitivity(results),
        comparisons=compare_models(results, bootstrap, seed),
    )
