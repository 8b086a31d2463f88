"""Which schemes still recognise the probe's actions when no single frame shows anything: the demo zoo
trained on the appearance-free probe (`python -m workbench demo --train --appearance-free`), measured on a
fresh seed; accuracy with an exact binomial interval against chance (1 / classes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .statistics import binomial_interval

COLUMNS = ["scheme", "accuracy", "ci_low", "ci_high", "chance", "above_chance", "temporal_accuracy",
           "static_accuracy", "clips"]


def appearance_free_summary(entries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per model of an appearance-free manifest: accuracy, interval, chance and whether the
    interval lies above chance."""
    rows = []
    for entry in entries:
        metrics = entry.get("metrics") or {}
        clips, accuracy = metrics.get("clips"), metrics.get("accuracy")
        classes = len(metrics.get("class_names") or [])
        if not clips or accuracy is None or not classes:
            continue
        low, high = binomial_interval(round(accuracy * clips), clips)
        chance = 1 / classes
        rows.append((entry["scheme"], accuracy, low, high, chance, low > chance,
                     metrics.get("temporal_accuracy"), metrics.get("static_accuracy"), clips))
    return pd.DataFrame(rows, columns=COLUMNS)
