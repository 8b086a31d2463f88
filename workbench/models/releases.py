"""The table of release families: checkpoint layouts of other code bases that `load_model` recognises.

A family recognises its files from their keys and shapes (`load` returns None for a file that is not
one of its layouts), loads them strictly into our own modules with the upstream parameter names, and
rebuilds a release model that `save_model` wrote (`reload`, by the layout recorded in its spec). A new
family (another toolbox's checkpoints) is one row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .mmaction import load_mmaction, mmaction_layout, reload_mmaction
from .official import load_official, load_resaved, official_layouts
from .spec import ModelSpec
from .torchvision_video import load_torchvision, reload_torchvision, torchvision_layout

LoadFn = Callable[..., nn.Module | None]  # (checkpoint data, file name, **overrides) -> model or None
ReloadFn = Callable[[ModelSpec, dict[str, torch.Tensor], str], nn.Module]


@dataclass(frozen=True)
class ReleaseFamily:
    """Checkpoints of one code base: how to recognise and load them, and which layouts they have."""

    name: str
    title: str
    load: LoadFn
    reload: ReloadFn
    owns: Callable[[str], bool]  # does a spec's `layout` come from this family?
    expects: str = ""  # what its files hold, in words (said when a file fits no family)


RELEASE_FAMILIES: dict[str, ReleaseFamily] = {}


def register_family(family: ReleaseFamily) -> ReleaseFamily:
    """Add (or replace) a row; `load_model` tries the families in table order."""
    RELEASE_FAMILIES[family.name] = family
    return family


def load_release(data: Mapping[str, Any], name: str, **overrides: Any) -> nn.Module | None:
    """The first family's model for a foreign checkpoint, or None when no family knows the file."""
    for family in RELEASE_FAMILIES.values():
        model = family.load(dict(data), name, **overrides)
        if model is not None:
            return model
    return None


def family_of_layout(layout: str) -> ReleaseFamily | None:
    """The family whose layout a resaved release model's spec records."""
    return next((f for f in RELEASE_FAMILIES.values() if f.owns(layout)), None)


register_family(ReleaseFamily(
    "official", "the GSM / GSF / TSM / TSN authors' releases", load_official, load_resaved,
    lambda layout: layout in official_layouts(),
    "`state_dict` (GSF: `model_state_dict`) with `base_model.*` and `new_fc.*` keys",
))
register_family(ReleaseFamily(
    "torchvision", "torchvision's video models (r3d_18, mc3_18, r2plus1d_18, s3d)", load_torchvision,
    reload_torchvision, torchvision_layout,
    "a plain state dict with `stem.*`, `layer1-4.*`, `fc.*` (VideoResNet) or `features.*`, "
    "`classifier.1.*` (S3D)",
))
register_family(ReleaseFamily(
    "mmaction2", "MMAction2 1.x recognizers (TSN, TSM, I3D, R(2+1)D, ir-CSN, C3D)", load_mmaction,
    reload_mmaction, mmaction_layout,
    "`{meta, state_dict}` with `backbone.*` and `cls_head.fc_cls.*` keys",
))
