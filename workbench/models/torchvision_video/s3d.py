"""S3D (Xie et al., ECCV 2018) as torchvision builds it: separable Inception on (B, C, T, H, W).

Every 3D conv of the Inception network is split into a 1xkxk spatial conv and a kx1x1 temporal conv,
each followed by BatchNorm (eps 1e-3) and ReLU. Stages are named after the paper's layers
(`conv_1a`, `mixed_3b`, ..., `mixed_5c`: the last spatial feature map, the Grad-CAM layer); inside a
stage the module layout is torchvision's, so its keys differ only in the stage prefix.
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import VideoModel
from ..frames import check_clip
from ..spec import ModelSpec

FEATURE_DIM = 1024
# Inception blocks: (input, 1x1, 3x3 reduce, 3x3, 3x3 reduce (2nd), 3x3 (2nd), pool projection)
BLOCKS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "mixed_3b": (192, 64, 96, 128, 16, 32, 32),
    "mixed_3c": (256, 128, 128, 192, 32, 96, 64),
    "mixed_4b": (480, 192, 96, 208, 16, 48, 64),
    "mixed_4c": (512, 160, 112, 224, 24, 64, 64),
    "mixed_4d": (512, 128, 128, 256, 24, 64, 64),
    "mixed_4e": (512, 112, 144, 288, 32, 64, 64),
    "mixed_4f": (528, 256, 160, 320, 32, 128, 128),
    "mixed_5b": (832, 256, 160, 320, 32, 128, 128),
    "mixed_5c": (832, 384, 192, 384, 48, 128, 128),
}
# the network in forward order: a stage name, or a pool (kernel, stride, padding)
PLAN: tuple[tuple[str, tuple | None], ...] = (
    ("conv_1a", None), ("pool_2a", ((1, 3, 3), (1, 2, 2), (0, 1, 1))), ("conv_2b", None), ("conv_2c", None),
    ("pool_3a", ((1, 3, 3), (1, 2, 2), (0, 1, 1))), ("mixed_3b", None), ("mixed_3c", None),
    ("pool_4a", ((3, 3, 3), (2, 2, 2), (1, 1, 1))), ("mixed_4b", None), ("mixed_4c", None),
    ("mixed_4d", None), ("mixed_4e", None), ("mixed_4f", None),
    ("pool_5a", ((2, 2, 2), (2, 2, 2), (0, 0, 0))), ("mixed_5b", None), ("mixed_5c", None),
)


class ConvNormAct(nn.Sequential):
    """Conv3d (no bias) -> BatchNorm3d(eps 1e-3) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] | int = 1,
                 stride: tuple[int, int, int] | int = 1, padding: tuple[int, int, int] | int = 0) -> None:
        super().__init__(
            nn.Conv3d(cin, cout, kernel, stride, padding, bias=False),
            nn.BatchNorm3d(cout, eps=0.001, momentum=0.001),
            nn.ReLU(inplace=True),
        )


class SeparableUnit(nn.Sequential):
    """1xkxk then kx1x1, each with BN+ReLU (torchvision's TemporalSeparableConv)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__(
            ConvNormAct(cin, cout, (1, kernel, kernel), (1, stride, stride), (0, padding, padding)),
            ConvNormAct(cout, cout, (kernel, 1, 1), (stride, 1, 1), (padding, 0, 0)),
        )


class SeparableInception(nn.Module):
    """Four branches, concatenated: 1x1x1; 1x1x1 -> separable; 1x1x1 -> separable; 3x3x3 max-pool -> 1x1x1."""

    def __init__(self, cin: int, b0: int, b1_mid: int, b1: int, b2_mid: int, b2: int, b3: int) -> None:
        super().__init__()
        self.branch0 = ConvNormAct(cin, b0)
        self.branch1 = nn.Sequential(ConvNormAct(cin, b1_mid), SeparableUnit(b1_mid, b1, 3, 1, 1))
        self.branch2 = nn.Sequential(ConvNormAct(cin, b2_mid), SeparableUnit(b2_mid, b2, 3, 1, 1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, 1, 1), ConvNormAct(cin, b3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class S3D(VideoModel):
    """(B, T, 3, H, W) -> (B, classes): separable Inception, (2, 7, 7) average pool, 1x1x1 classifier,
    mean over what is left of time and space (at least 13 frames of 193 px: the pool needs 2x7x7)."""

    def __init__(self, num_classes: int, spec: ModelSpec | None = None, dropout: float = 0.2) -> None:
        super().__init__()
        stem = {"conv_1a": lambda: SeparableUnit(3, 64, 7, 2, 3), "conv_2b": lambda: ConvNormAct(64, 64),
                "conv_2c": lambda: SeparableUnit(64, 192, 3, 1, 1)}
        for name, pool in PLAN:
            if pool is not None:
                self.add_module(name, nn.MaxPool3d(*pool))
            elif name in BLOCKS:
                self.add_module(name, SeparableInception(*BLOCKS[name]))
            else:
                self.add_module(name, stem[name]())
        self.avgpool = nn.AvgPool3d((2, 7, 7), 1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv3d(FEATURE_DIM, num_classes, 1, bias=True)
        self.identify("s3d", True, spec)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last Inception block's output (B, 1024, t, h, w)."""
        check_clip(x)
        h = x.transpose(1, 2)
        for name, _ in PLAN:
            h = getattr(self, name)(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.classifier(self.dropout(self.avgpool(self.features(x))))
        return h.mean(dim=(2, 3, 4))
