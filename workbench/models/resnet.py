"""One ResNet backbone for every scheme: a temporal operator or a conv builder per residual block.

2D schemes fold time into the batch and keep torchvision's parameter names and shapes for the 2D
parts (`conv1`, `bn1`, `layer1.0.conv1`, ..., `fc`), so ImageNet ResNet weights load. 3D schemes
run on (B, C, T, H, W) with the same names; their kernels are 3D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .base import VideoModel
from .frames import check_clip, folded_frames
from .schemes import get_scheme
from .spatiotemporal import conv_spatial


@dataclass(frozen=True)
class Depth:
    """Block type, blocks per stage, stage widths and stem of one backbone depth."""

    block: str
    layers: tuple[int, int, int, int]
    widths: tuple[int, int, int, int]
    stem: str  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "small": 3x3/2 conv only


DEPTHS: dict[str, Depth] = {
    "resnet-tiny": Depth("basic", (1, 1, 1, 1), (16, 32, 64, 128), "small"),
    "resnet18": Depth("basic", (2, 2, 2, 2), (64, 128, 256, 512), "imagenet"),
    "resnet34": Depth("basic", (3, 4, 6, 3), (64, 128, 256, 512), "imagenet"),
    "resnet50": Depth("bottleneck", (3, 4, 6, 3), (64, 128, 256, 512), "imagenet"),
    "resnet101": Depth("bottleneck", (3, 4, 23, 3), (64, 128, 256, 512), "imagenet"),
}

class Layout:
    """How one scheme (a row of the scheme table) builds convs, norms and operators inside a block."""

    def __init__(self, scheme: str, options: dict[str, Any]) -> None:
        self.scheme = get_scheme(scheme)
        self.options = options
        self.is_3d = self.scheme.is_3d

    def conv(
        self, cin: int, cout: int, kernel: int, stride: int, temporal: bool, bottleneck: bool = False
    ) -> nn.Module:
        """A kxk conv (3D schemes: the scheme's builder in temporal stages, 1xkxk elsewhere)."""
        if not self.is_3d:
            return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        if kernel == 1:
            return nn.Conv3d(cin, cout, 1, (1, stride, stride), bias=False)
        builder = self.scheme.conv if temporal and self.scheme.conv is not None else conv_spatial
        return builder(cin, cout, stride, {**self.options, "bottleneck": bottleneck})

    def norm(self, channels: int) -> nn.Module:
        """BatchNorm of the right dimensionality."""
        return nn.BatchNorm3d(channels) if self.is_3d else nn.BatchNorm2d(channels)

    def temporal_op(self, channels: int) -> tuple[str, nn.Module] | None:
        """The (name, module) temporal operator for a 2D block's residual branch, if any."""
        return self.scheme.build_operator(channels, self.options)


class Block(nn.Module):
    """Residual block; `temporal_name` names the operator applied to the residual branch input."""

    expansion = 1

    def __init__(self) -> None:
        super().__init__()
        self.temporal_name: str | None = None
        self.downsample: nn.Module | None = None

    def attach_temporal(self, layout: Layout, channels: int, temporal: bool) -> None:
        """Add the scheme's temporal operator (2D schemes, temporal stages only)."""
        found = layout.temporal_op(channels) if temporal and not layout.is_3d else None
        if found is not None:
            self.temporal_name, op = found
            self.add_module(self.temporal_name, op)

    def branch_input(self, x: torch.Tensor) -> torch.Tensor:
        """Input of the residual branch, after the temporal operator if there is one."""
        return getattr(self, self.temporal_name)(x) if self.temporal_name else x

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Identity or the projection shortcut."""
        return self.downsample(x) if self.downsample is not None else x


class BasicBlock(Block):
    """Two kxk convs (ResNet-18/34 style)."""

    def __init__(self, cin: int, planes: int, stride: int, layout: Layout, temporal: bool) -> None:
        super().__init__()
        self.conv1 = layout.conv(cin, planes, 3, stride, temporal)
        self.bn1 = layout.norm(planes)
        self.relu1 = nn.ReLU(inplace=True)  # separate ReLU modules: Captum's DeepLift needs them
        self.conv2 = layout.conv(planes, planes, 3, 1, temporal)
        self.bn2 = layout.norm(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.attach_temporal(layout, cin, temporal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(self.branch_input(x))))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class Bottleneck(Block):
    """1x1 -> kxk -> 1x1 with 4x expansion (ResNet-50/101 style)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, layout: Layout, temporal: bool) -> None:
        super().__init__()
        self.conv1 = layout.conv(cin, planes, 1, 1, temporal)
        self.bn1 = layout.norm(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = layout.conv(planes, planes, 3, stride, temporal, bottleneck=True)
        self.bn2 = layout.norm(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = layout.conv(planes, planes * 4, 1, 1, temporal)
        self.bn3 = layout.norm(planes * 4)
        self.relu3 = nn.ReLU(inplace=True)
        # TSM shifts the block input (its "blockres"); gated operators act on the inner width after
        # the (strided) 3x3 conv, as GSF does on 1/4 of the expanded channels: there the gate conv
        # costs < 1% of the network's FLOPs instead of ~10% on the expanded input
        self.inner_temporal = layout.scheme.inner
        self.attach_temporal(layout, planes if self.inner_temporal else cin, temporal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inner_temporal:
            out = self.relu1(self.bn1(self.conv1(x)))
            out = self.branch_input(self.relu2(self.bn2(self.conv2(out))))
        else:
            out = self.relu1(self.bn1(self.conv1(self.branch_input(x))))
            out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.shortcut(x))


BLOCKS: dict[str, type[Block]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class VideoResNet(VideoModel):
    """(B, T, 3, H, W) -> (B, classes). 2D schemes: per-frame logits averaged (TSN consensus)."""

    def __init__(
        self,
        scheme: str,
        depth: Depth,
        num_classes: int,
        frames: int,
        temporal_stages: tuple[int, ...] = (1, 2, 3, 4),
        dropout: float = 0.0,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        layout = Layout(scheme, dict(options or {}))
        self.scheme = scheme
        self.is_3d = layout.is_3d
        self.frames = frames  # what the model was built for (the spec's); a clip may have other lengths
        width0 = depth.widths[0]
        if depth.stem == "imagenet":
            self.conv1 = self._stem_conv(3, width0, 7, 2)
            self.maxpool: nn.Module = (
                nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)) if self.is_3d else nn.MaxPool2d(3, 2, 1)
            )
        else:
            self.conv1 = self._stem_conv(3, width0, 3, 2)
            self.maxpool = nn.Identity()
        self.bn1 = layout.norm(width0)
        self.relu = nn.ReLU(inplace=True)
        block = BLOCKS[depth.block]
        cin = width0
        for stage, (blocks, width) in enumerate(zip(depth.layers, depth.widths), start=1):
            temporal = stage in temporal_stages
            stride = 1 if stage == 1 else 2
            layers = []
            for i in range(blocks):
                b = block(cin, width, stride if i == 0 else 1, layout, temporal)
                cout = width * block.expansion
                if i == 0 and (stride != 1 or cin != cout):
                    b.downsample = nn.Sequential(
                        layout.conv(cin, cout, 1, stride, False), layout.norm(cout)
                    )
                layers.append(b)
                cin = cout
            self.add_module(f"layer{stage}", nn.Sequential(*layers))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        self._init_weights()

    def _stem_conv(self, cin: int, cout: int, kernel: int, stride: int) -> nn.Module:
        if self.is_3d:
            return nn.Conv3d(
                cin, cout, (1, kernel, kernel), (1, stride, stride), (0, kernel // 2, kernel // 2), bias=False
            )
        return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # gate convs stay zero-initialised: a fresh GSM/GSF starts as its no-shift network

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone output before pooling: (B*T, C, h, w) for 2D schemes, (B, C, T, h, w) for 3D."""
        b, t = check_clip(x)
        h = x.transpose(1, 2) if self.is_3d else x.reshape(b * t, *x.shape[2:])
        with folded_frames(t):  # the clip's length, for the temporal operators (never stored)
            h = self.maxpool(self.relu(self.bn1(self.conv1(h))))
            return self.layer4(self.layer3(self.layer2(self.layer1(h))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        h = self.features(x)
        if self.is_3d:
            return self.fc(self.dropout(h.mean(dim=(2, 3, 4))))
        frame_logits = self.fc(self.dropout(h.mean(dim=(2, 3))))
        return frame_logits.view(b, t, -1).mean(dim=1)


def make_backbone(name: str) -> Depth:
    """Depth config by name, with a clear error for unknown names."""
    if name not in DEPTHS:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(DEPTHS)}")
    return DEPTHS[name]

