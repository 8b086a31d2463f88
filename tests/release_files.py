"""Seeded torchvision / MMAction2 release files, written at test time in the exact released layout
from the references in tests/fixtures/releases/ (see its README: upstream code, seeded weights)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.test_official import seeded_state

FIXTURES = Path(__file__).parent / "fixtures" / "releases"
# reference -> (layout id, scheme, backbone) it loads as
LAYOUTS: dict[str, tuple[str, str, str]] = {
    "tv_r3d_18_k400": ("torchvision-r3d_18", "c3d", "resnet18"),
    "tv_mc3_18_k400": ("torchvision-mc3_18", "mc3", "resnet18"),
    "tv_r2plus1d_18_k400": ("torchvision-r2plus1d_18", "r2plus1d", "resnet18"),
    "tv_s3d_k400": ("torchvision-s3d", "s3d", "s3d-inception"),
    "mma_tsn_r50_k400_3f": ("mmaction2-tsn-resnet50", "tsn", "resnet50"),
    "mma_tsm_r50_sthv2_8f": ("mmaction2-tsm-resnet50", "tsm", "resnet50"),
    "mma_i3d_r50_k400_32f": ("mmaction2-i3d-resnet50", "i3d", "resnet50"),
    "mma_r2plus1d_r34_k400_8f": ("mmaction2-r2plus1d-resnet34", "r2plus1d", "resnet34"),
    "mma_ircsn_r152_k400_32f": ("mmaction2-ircsn-resnet152", "csn", "resnet152"),
    "mma_ircsn_r50_k400_32f": ("mmaction2-ircsn-resnet50", "csn", "resnet50"),
    "mma_c3d_ucf101_16f": ("mmaction2-c3d", "c3d", "c3d-vgg"),
}


def reference(name: str) -> dict:
    """One reference JSON (layout, schema, upstream logits)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def release_data(ref: dict, with_meta: bool = True) -> dict:
    """The checkpoint as the upstream code saves it: a plain state dict (torchvision) or
    `{meta, state_dict}` (MMAction2; `with_meta=False` drops the meta, as some converted files do)."""
    state = seeded_state(ref["state_dict_schema"])
    entry = ref["checkpoint"]["state_dict_entry"]
    if entry is None:
        return state
    meta = ref["checkpoint"]["example_values"] if with_meta else {}
    return {**meta, entry: state}


def write_release(name: str, folder: Path, with_meta: bool = True) -> Path:
    """A seeded release file under its released file name in `folder`."""
    ref = reference(name)
    path = folder / ref["filename_hint"]
    torch.save(release_data(ref, with_meta), path)
    return path
