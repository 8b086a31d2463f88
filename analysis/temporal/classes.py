"""A dataset's class labels in each model's terms: label index, temporal mirror and class kind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.models.spec import ModelSpec

from .config import ExperimentError


def class_table(spec: ModelSpec, class_info: list[dict[str, Any]] | None) -> tuple[list[int], list[str]]:
    """Mirror index (-1 none) and kind per model class, from the spec or else the dataset's classes.json."""
    info = {entry["name"]: entry for entry in class_info or []}
    mirrors, kinds = [], []
    for index, name in enumerate(spec.class_names):
        mirror = spec.mirror_index(index)
        if mirror is None and not spec.mirror_of:
            other = info.get(name, {}).get("mirror_of")
            mirror = spec.class_names.index(other) if other in spec.class_names else None
        mirrors.append(-1 if mirror is None else mirror)
        kinds.append(spec.class_kinds.get(name) or info.get(name, {}).get("kind") or "unknown")
    return mirrors, kinds


def model_label(spec: ModelSpec, label_name: str, dataset_classes: Sequence[str]) -> int:
    """The model's index of a dataset class (by name; numeric class names by index)."""
    if label_name in spec.class_names:
        return spec.class_names.index(label_name)
    if label_name.isdigit() and int(label_name) < spec.num_classes:
        return int(label_name)
    raise ExperimentError(
        f"dataset class {label_name!r} is not a class of the {spec.scheme} model "
        f"({spec.num_classes} classes: {', '.join(spec.class_names[:6])}...)"
    )
