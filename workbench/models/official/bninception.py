"""BN-Inception with the Caffe-style layer ids of the GSM/GSF releases, GSM/GSF where the releases put it.

Every conv has a bias and is followed by `<id>_bn` and a ReLU; pooling rounds up (Caffe). The
layer table below is our own compact description of the network (widths read from the releases'
layer lists); parameter names follow the releases, e.g. `inception_3a_1x1`,
`inception_3a_double_3x3_2_bn`, `gsm_inception_3a_1x1.conv3D.weight`,
`gsf_inception_3a_1x1.channel_conv1.weight`. GSM and GSF gate the same ten convs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..temporal import GateShift
from .gsf import ReleaseGSF

TEMPORAL_OPS = ("gsm", "gsf", "none")


@dataclass(frozen=True)
class InceptionBlock:
    """One BN-Inception block: branch widths, pooling branch, stride (2: a grid reduction)."""

    name: str  # "3a" ... "5b"
    single: int | None  # 1x1 branch width (None: reduction block without it)
    three: tuple[int, int]  # 3x3 branch: (reduce, 3x3)
    double: tuple[int, int]  # double 3x3 branch: (reduce, both 3x3)
    pool: str  # "ave" (3x3/1), "max" (3x3/1, pad 1) or "max-reduce" (3x3/2, no projection)
    proj: int | None  # pool projection width
    stride: int = 1

    @property
    def gated(self) -> str:
        """The conv whose output the GSM release gates: the 1x1 branch, else the 3x3 reduce."""
        return "1x1" if self.single is not None else "3x3_reduce"


BLOCKS: tuple[InceptionBlock, ...] = (
    InceptionBlock("3a", 64, (64, 64), (64, 96), "ave", 32),
    InceptionBlock("3b", 64, (64, 96), (64, 96), "ave", 64),
    InceptionBlock("3c", None, (128, 160), (64, 96), "max-reduce", None, 2),
    InceptionBlock("4a", 224, (64, 96), (96, 128), "ave", 128),
    InceptionBlock("4b", 192, (96, 128), (96, 128), "ave", 128),
    InceptionBlock("4c", 160, (128, 160), (128, 160), "ave", 128),
    InceptionBlock("4d", 96, (128, 192), (160, 192), "ave", 128),
    InceptionBlock("4e", None, (128, 192), (192, 256), "max-reduce", None, 2),
    InceptionBlock("5a", 352, (192, 320), (160, 224), "ave", 128),
    InceptionBlock("5b", 352, (192, 320), (192, 224), "max", 128),
)
FEATURE_DIM = 1024


class CaffeUnits(nn.Module):
    """Flat registry of conv -> [gate-shift(-fuse)] -> BN -> ReLU units named like the Caffe layer ids.

    A unit `u` registers conv `u{CONV}`, gate `gsm_u{CONV}` (GSF: `gsf_u{CONV}`) and BN `u{BN}`:
    BN-Inception names them `x`, `gsm_x`, `x_bn`; InceptionV3 `x_Conv2D`, `gsm_x_Conv2D`,
    `x_batchnorm`. `temporal` picks the operator ("gsm", "gsf" or "none"); `gsf_channels` maps a GSF
    module name to how many of its channels it gates (absent: all, the release's default ratio 100).
    """

    CONV = ""
    BN = "_bn"

    def __init__(self, temporal: str, gsf_channels: Mapping[str, int] | None = None) -> None:
        super().__init__()
        if temporal not in TEMPORAL_OPS:
            raise ValueError(f"unknown temporal operator {temporal!r}; choose from {', '.join(TEMPORAL_OPS)}")
        self.temporal = temporal
        self.gsf_channels = dict(gsf_channels or {})
        self.stage_names: list[str] = []  # each block's output, in forward order (the feature stages)

    def add_stage(self, name: str) -> None:
        """Register block `name`'s output: an identity over its concatenated branches, so hooks and
        Grad-CAM see the block's feature map as a module output (no weights: the file's keys stay)."""
        self.add_module(name, nn.Identity())
        self.stage_names.append(name)

    def stage(self, name: str, outs: list[torch.Tensor]) -> torch.Tensor:
        """Block `name`'s output: its branches concatenated over channels."""
        return getattr(self, name)(torch.cat(outs, dim=1))

    def gate_name(self, unit: str) -> str:
        """Module name of the temporal operator after unit `unit`'s conv."""
        return f"{self.temporal}_{unit}{self.CONV}"

    def add_unit(
        self, name: str, cin: int, cout: int, kernel: int | tuple[int, int] = 1,
        stride: int = 1, pad: int | tuple[int, int] = 0, gated: bool = False,
    ) -> int:
        """Register unit `name` (conv, optional gate, BN, ReLU); returns the output width."""
        self.add_module(name + self.CONV, nn.Conv2d(cin, cout, kernel, stride, pad, bias=True))
        if gated and self.temporal == "gsm":
            # the release's channel interleave after the shift is part of the function it learned
            self.add_module(self.gate_name(name), GateShift(cout, 2, interleave=True))
        elif gated and self.temporal == "gsf":
            active = self.gsf_channels.get(self.gate_name(name), cout)
            self.add_module(self.gate_name(name), ReleaseGSF(cout, active))
        self.add_module(name + self.BN, nn.BatchNorm2d(cout))
        self.add_module(f"{name}_relu", nn.ReLU(inplace=True))
        return cout

    def unit(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Run one registered unit."""
        x = getattr(self, name + self.CONV)(x)
        gate = getattr(self, self.gate_name(name), None)
        if gate is not None:
            x = gate(x)
        return getattr(self, f"{name}_relu")(getattr(self, name + self.BN)(x))

    def chain(self, names: list[str], x: torch.Tensor) -> torch.Tensor:
        """Run units one after another."""
        for name in names:
            x = self.unit(name, x)
        return x


class BNInception(CaffeUnits):
    """BN-Inception backbone (B*T, 3, H, W) -> (B*T, 1024) with the releases' 10 GSM or GSF modules."""

    def __init__(self, temporal: str = "gsm", gsf_channels: Mapping[str, int] | None = None) -> None:
        super().__init__(temporal, gsf_channels)
        self.add_unit("conv1_7x7_s2", 3, 64, 7, 2, 3)
        self.pool1_3x3_s2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.add_unit("conv2_3x3_reduce", 64, 64)
        self.add_unit("conv2_3x3", 64, 192, 3, 1, 1)
        self.pool2_3x3_s2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.plans: list[tuple[str, list[list[str]], str]] = []
        cin = 192
        for block in BLOCKS:
            cin = self._add_block(block, cin)
        if cin != FEATURE_DIM:
            raise AssertionError(f"BN-Inception table ends with {cin} channels, not {FEATURE_DIM}")
        # GSM pools with a fixed 7x7 window (exactly global at 224 px input), GSF globally
        self.global_pool: nn.Module = (
            nn.AdaptiveAvgPool2d(1) if temporal == "gsf" else nn.AvgPool2d(7, 1, ceil_mode=True)
        )

    def _add_block(self, b: InceptionBlock, cin: int) -> int:
        prefix = f"inception_{b.name}_"
        branches: list[list[str]] = []
        cout = 0
        if b.single is not None:
            cout += self.add_unit(prefix + "1x1", cin, b.single, gated=b.gated == "1x1")
            branches.append([prefix + "1x1"])
        self.add_unit(prefix + "3x3_reduce", cin, b.three[0], gated=b.gated == "3x3_reduce")
        cout += self.add_unit(prefix + "3x3", b.three[0], b.three[1], 3, b.stride, 1)
        branches.append([prefix + "3x3_reduce", prefix + "3x3"])
        self.add_unit(prefix + "double_3x3_reduce", cin, b.double[0])
        self.add_unit(prefix + "double_3x3_1", b.double[0], b.double[1], 3, 1, 1)
        cout += self.add_unit(prefix + "double_3x3_2", b.double[1], b.double[1], 3, b.stride, 1)
        branches.append([prefix + "double_3x3_reduce", prefix + "double_3x3_1", prefix + "double_3x3_2"])
        if b.pool == "ave":
            pool: nn.Module = nn.AvgPool2d(3, 1, 1, ceil_mode=True)
        elif b.pool == "max":
            pool = nn.MaxPool2d(3, 1, 1, ceil_mode=True)
        else:
            pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.add_module(prefix + "pool", pool)
        if b.proj is not None:
            cout += self.add_unit(prefix + "pool_proj", cin, b.proj)
            branches.append([prefix + "pool_proj"])
        else:
            cout += cin
            branches.append([])
        self.plans.append((prefix + "pool", branches, b.name))
        self.add_stage(f"inception_{b.name}")
        return cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1_3x3_s2(self.unit("conv1_7x7_s2", x))
        x = self.pool2_3x3_s2(self.chain(["conv2_3x3_reduce", "conv2_3x3"], x))
        for pool_name, branches, block in self.plans:
            outs = [self.chain(names, x) for names in branches[:-1]]
            # the last branch starts with the block's pooling layer
            outs.append(self.chain(branches[-1], getattr(self, pool_name)(x)))
            x = self.stage(f"inception_{block}", outs)
        return self.global_pool(x).flatten(1)
