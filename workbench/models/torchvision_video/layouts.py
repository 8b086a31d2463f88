"""Recognise a torchvision video-model state dict by its keys and shapes, and say how it maps onto ours.

`torchvision.models.video.VideoResNet` files (`r3d_18`, `mc3_18`, `r2plus1d_18`, and any depth or
stem mix of the same builders) have `stem.*`, `layerS.B.convN.*` and `fc.*`: the stem's shapes give
its variant, the kxk conv of each stage's first block gives the stage's conv builder (3x3x3 =
Conv3DSimple, 1x3x3 = Conv3DNoTemporal, a nested (2+1)D pair = Conv2Plus1D), and torchvision's
builders fix the temporal strides (a temporal builder downsamples time with space). S3D files have
`features.0.0.0.weight` (5-D) and `classifier.1.*`. Files that look alike but are not these (an
image ResNet, a video transformer) are refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import CheckpointError
from ..resnet import DEPTHS
from .s3d import PLAN

# what each torchvision conv builder is in our scheme table
BUILDERS = {"3d": "Conv3DSimple (3x3x3)", "2d": "Conv3DNoTemporal (1x3x3)", "2plus1d": "Conv2Plus1D"}


@dataclass
class TorchvisionLayout:
    """A torchvision video model: its name, the scheme and backbone it is here, and build options."""

    name: str  # "r3d_18", "mc3_18", "r2plus1d_18", "s3d", or the nearest description of a variant
    scheme: str
    backbone: str  # one of our depths, or "s3d-inception" (an own module)
    num_classes: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def layout(self) -> str:
        """The id recorded in ModelSpec.layout."""
        return f"torchvision-{self.name}"

    def describe(self) -> str:
        """A short human description for messages."""
        return f"torchvision {self.name} ({self.scheme} on {self.backbone}, {self.num_classes} classes)"


def _stage_blocks(keys: set[str]) -> tuple[int, ...]:
    """Blocks per stage, from `layerS.B.` key prefixes."""
    found: dict[int, set[int]] = {}
    for key in keys:
        if m := re.match(r"layer(\d)\.(\d+)\.", key):
            found.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return tuple(len(found.get(stage, ())) for stage in (1, 2, 3, 4))


def _builder(state: dict[str, torch.Tensor], stage: int, conv: str) -> str | None:
    """Which torchvision conv builder stage `stage` uses, from its first block's kxk conv."""
    if f"layer{stage}.0.{conv}.0.0.weight" in state and f"layer{stage}.0.{conv}.0.3.weight" in state:
        return "2plus1d"
    weight = state.get(f"layer{stage}.0.{conv}.0.weight")
    if weight is None or weight.dim() != 5:
        return None
    return "3d" if weight.shape[2] == 3 else "2d" if weight.shape[2] == 1 else None


def _refuse_lookalike(state: dict[str, torch.Tensor], name: str) -> None:
    """A torchvision file that is not one of its video CNNs: say what it is instead."""
    keys = set(state)
    conv1 = state.get("conv1.weight")
    if conv1 is not None and "fc.weight" in keys and any(k.startswith("layer1.0.conv1.") for k in keys):
        raise CheckpointError(
            f"cannot load {name!r}: it looks like a torchvision image ResNet (conv1.weight "
            f"{tuple(conv1.shape)} is {conv1.dim() - 2}-D and there is no stem.*), not a video model; "
            "torchvision's video CNNs are "
            "r3d_18, mc3_18, r2plus1d_18 and s3d")
    if "conv_proj.weight" in keys or any(k.startswith("patch_embed.proj.") for k in keys):
        kind = "MViT" if "conv_proj.weight" in keys else "Swin3D"
        raise CheckpointError(f"cannot load {name!r}: a torchvision {kind} video transformer; only the video "
                              "CNNs (r3d_18, mc3_18, r2plus1d_18, s3d) load")


def detect_video_resnet(state: dict[str, torch.Tensor], name: str) -> TorchvisionLayout | None:
    """The layout of a torchvision VideoResNet state dict, None if the keys are not one."""
    keys = set(state)
    if "stem.0.weight" not in keys or "fc.weight" not in keys:
        return None
    if not any(k.startswith("layer4.") for k in keys):
        return None
    stem = state["stem.0.weight"]
    if stem.dim() != 5:
        raise CheckpointError(f"cannot load {name!r}: stem.0.weight is {tuple(stem.shape)}, "
                              "not the 5-D conv of a torchvision video ResNet")
    bottleneck = "layer1.0.conv3.0.weight" in keys
    blocks = _stage_blocks(keys)
    depth = next((d for d, spec in DEPTHS.items() if spec.layers == blocks and spec.stem == "imagenet"
                  and spec.block == ("bottleneck" if bottleneck else "basic")), None)
    if depth is None:
        raise CheckpointError(f"cannot load {name!r}: a torchvision VideoResNet with {blocks} "
                              f"{'bottleneck' if bottleneck else 'basic'} blocks per stage, "
                              "a depth we do not build")
    conv = "conv2" if bottleneck else "conv1"
    builders = [_builder(state, stage, conv) for stage in (1, 2, 3, 4)]
    if None in builders:
        stage = builders.index(None) + 1
        raise CheckpointError(f"cannot load {name!r}: layer{stage}.0.{conv} is none of torchvision's conv "
                              f"builders ({', '.join(BUILDERS.values())})")
    factorised = "stem.3.weight" in keys
    stem_t = state["stem.3.weight" if factorised else "stem.0.weight"].shape[2]
    options: dict[str, Any] = {"stem_kernel_t": int(stem_t), "stem_pool": False}
    if factorised:
        options["stem_mid"] = int(stem.shape[0])
    # torchvision's temporal builders downsample time with space (get_downsample_stride (s, s, s))
    options["temporal_strides"] = tuple(1 if stage == 1 or b == "2d" else 2
                                        for stage, b in enumerate(builders, 1))
    number = depth.removeprefix("resnet")
    if set(builders) == {"2plus1d"}:
        scheme, label = "r2plus1d", f"r2plus1d_{number}"
        options["r2plus1d_mid"] = "block"
    elif set(builders) == {"3d"}:
        scheme, label = "c3d", f"r3d_{number}"
    elif "2plus1d" not in builders and builders == sorted(builders, key=("3d", "2d").index):
        scheme, label = "mc3", f"mc{builders.count('3d') + 2}_{number}"
        options["mc_stages"] = builders.count("3d")
    else:
        raise CheckpointError(f"cannot load {name!r}: a torchvision VideoResNet mixing conv builders "
                              f"{[BUILDERS[b] for b in builders]}, which no scheme of ours builds")
    return TorchvisionLayout(label, scheme, depth, int(state["fc.weight"].shape[0]), options)


def detect_s3d(state: dict[str, torch.Tensor], name: str) -> TorchvisionLayout | None:
    """The layout of a torchvision S3D state dict, None if the keys are not one."""
    first = state.get("features.0.0.0.weight")
    head = state.get("classifier.1.weight")
    if first is None or head is None:
        return None
    if first.dim() != 5:
        raise CheckpointError(f"cannot load {name!r}: features.0.0.0.weight is {tuple(first.shape)}, "
                              "it looks "
                              "like a torchvision image model (2-D convs), not S3D")
    return TorchvisionLayout("s3d", "s3d", "s3d-inception", int(head.shape[0]))


def detect_layout(state: dict[str, torch.Tensor], name: str) -> TorchvisionLayout | None:
    """A torchvision video layout, None when the keys are not torchvision's; look-alikes are errors."""
    found = detect_video_resnet(state, name) or detect_s3d(state, name)
    if found is None:
        _refuse_lookalike(state, name)
    return found


# S3D: torchvision's `features.N` is our stage N of the plan; the classifier conv loses its Sequential
S3D_RULES = tuple((rf"^features\.{i}\.", f"{stage}.") for i, (stage, _) in enumerate(PLAN)) + (
    (r"^classifier\.1\.", "classifier."),
)


def resnet_rules(factorised_stem: bool) -> tuple[tuple[str, str], ...]:
    """Rename rules torchvision VideoResNet -> our VideoResNet.

    torchvision wraps each block conv with its BN in a Sequential (`conv1.0` conv, `conv1.1` BN); ours
    names them `conv1` and `bn1`. The (2+1)D stem (`stem.0, 1, 3, 4`) is our factorised `conv1` + `bn1`.
    """
    if factorised_stem:
        stem = ((r"^stem\.0\.", "conv1.0."), (r"^stem\.1\.", "conv1.1."), (r"^stem\.3\.", "conv1.3."),
                (r"^stem\.4\.", "bn1."))
    else:
        stem = ((r"^stem\.0\.", "conv1."), (r"^stem\.1\.", "bn1."))
    return stem + (
        (r"^(layer\d\.\d+)\.conv(\d)\.0\.", r"\1.conv\2."),
        (r"^(layer\d\.\d+)\.conv(\d)\.1\.", r"\1.bn\2."),
    )
