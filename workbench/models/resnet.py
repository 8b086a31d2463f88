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
    "resnet152": Depth("bottleneck", (3, 8, 36, 3), (64, 128, 256, 512), "imagenet"),
}
# build options that only a 3D network can honour, with the value that means "as our default backbone"
OPTIONS_3D_ONLY = {"temporal_strides": (1, 1, 1, 1), "pool2": False, "stem_kernel_t": 1, "stem_stride_t": 1,
                   "stem_pool_stride_t": 1, "stem_mid": None}

class Layout:
    """How one scheme (a row of the scheme table) builds convs, norms and operators inside a block."""

    def __init__(self, scheme: str, options: dict[str, Any]) -> None:
        self.scheme = get_scheme(scheme)
        self.options = options
        self.is_3d = self.scheme.is_3d
        self.bn_eps = float(options.get("bn_eps", 1e-5))

    def conv(
        self, cin: int, cout: int, kernel: int, stride: int, temporal: bool, bottleneck: bool = False, *,
        stage: int = 1, temporal_stride: int = 1, block_in: int | None = None, reduce: bool = False,
    ) -> nn.Module:
        """A kxk conv (3D schemes: the scheme's builder in temporal blocks, 1xkxk elsewhere).

        `reduce` marks a bottleneck's first 1x1 conv, which a scheme may inflate (`reduce_conv`).
        """
        if not self.is_3d:
            return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        where = {**self.options, "bottleneck": bottleneck, "stage": stage, "temporal_stride": temporal_stride,
                 "block_in": cin if block_in is None else block_in}
        if kernel == 1:
            if reduce and temporal and self.scheme.reduce_conv is not None:
                return self.scheme.reduce_conv(cin, cout, stride, where)
            return nn.Conv3d(cin, cout, 1, (temporal_stride, stride, stride), bias=False)
        builder = self.scheme.conv if temporal and self.scheme.conv is not None else conv_spatial
        return builder(cin, cout, stride, where)

    def shortcut(self, cin: int, cout: int, stride: int, temporal_stride: int, stage: int) -> nn.Module:
        """The projection shortcut: a strided 1x1 conv and a norm.

        With `factorised_shortcut` the conv is the scheme's own builder at kernel 1, as MMAction2's
        ResNet2Plus1d builds it (a 1x1x1 (2+1)D pair with BN+ReLU between).
        """
        if self.is_3d and self.options.get("factorised_shortcut") and self.scheme.conv is not None:
            where = {**self.options, "kernel": 1, "stage": stage, "temporal_stride": temporal_stride}
            conv = self.scheme.conv(cin, cout, stride, where)
        else:
            conv = self.conv(cin, cout, 1, stride, False, temporal_stride=temporal_stride)
        return nn.Sequential(conv, self.norm(cout))

    def norm(self, channels: int) -> nn.Module:
        """BatchNorm of the right dimensionality (eps from `bn_eps`: MMAction2's 3D configs use 1e-3)."""
        if self.is_3d:
            return nn.BatchNorm3d(channels, eps=self.bn_eps)
        return nn.BatchNorm2d(channels, eps=self.bn_eps)

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

    def __init__(
        self, cin: int, planes: int, stride: int, layout: Layout, temporal: bool, stage: int = 1,
        temporal_stride: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = layout.conv(cin, planes, 3, stride, temporal, stage=stage,
                                 temporal_stride=temporal_stride)
        self.bn1 = layout.norm(planes)
        self.relu1 = nn.ReLU(inplace=True)  # separate ReLU modules: Captum's DeepLift needs them
        self.conv2 = layout.conv(planes, planes, 3, 1, temporal, stage=stage, block_in=cin)
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

    def __init__(
        self, cin: int, planes: int, stride: int, layout: Layout, temporal: bool, stage: int = 1,
        temporal_stride: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = layout.conv(cin, planes, 1, 1, temporal, stage=stage, reduce=True)
        self.bn1 = layout.norm(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = layout.conv(planes, planes, 3, stride, temporal, bottleneck=True, stage=stage,
                                 temporal_stride=temporal_stride)
        self.bn2 = layout.norm(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = layout.conv(planes, planes * 4, 1, 1, temporal, stage=stage)
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
    """(B, T, 3, H, W) -> (B, classes). 2D schemes: per-frame logits averaged (TSN consensus).

    Backbone options (all default to our own backbone; torchvision's and MMAction2's video ResNets
    differ from it in these): `temporal_strides` per stage; `inflate` (per stage, per block: 0 builds a
    block without temporal kernels, as I3D does); `bn_eps`; a temporal max-pool after stage 1
    (`pool2`); the stem's temporal kernel and stride (`stem_kernel_t`, `stem_stride_t`), its max-pool
    (`stem_pool`, `stem_pool_stride_t`) and a (2+1)D-factorised stem conv with `stem_mid` middle
    channels (torchvision's R(2+1)D: 45).
    """

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
        options = dict(options or {})
        layout = Layout(scheme, options)
        self.scheme = scheme
        self.is_3d = layout.is_3d
        self.frames = frames  # what the model was built for (the spec's); a clip may have other lengths
        if not self.is_3d:
            odd = sorted(k for k, plain in OPTIONS_3D_ONLY.items()
                         if k in options and _plain(options[k]) != _plain(plain))
            if odd:
                raise ValueError(f"2D scheme {scheme!r} folds time into the batch: "
                                 f"{', '.join(odd)} need a 3D scheme")
        strides_t = tuple(int(t) for t in options.get("temporal_strides", (1, 1, 1, 1)))
        inflate = _inflation(options.get("inflate"), depth.layers)
        if len(strides_t) != len(depth.layers):
            raise ValueError(f"temporal_strides needs one stride per stage ({len(depth.layers)}), "
                             f"got {strides_t}")
        width0 = depth.widths[0]
        kernel, stride = (7, 2) if depth.stem == "imagenet" else (3, 2)
        self.conv1 = self._stem_conv(width0, kernel, stride, options)
        self.bn1 = layout.norm(width0)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = nn.Identity()
        if options.get("stem_pool", depth.stem == "imagenet"):
            pool_t = int(options.get("stem_pool_stride_t", 1))
            self.maxpool = (nn.MaxPool3d((1, 3, 3), (pool_t, 2, 2), (0, 1, 1)) if self.is_3d
                            else nn.MaxPool2d(3, 2, 1))
        block = BLOCKS[depth.block]
        cin = width0
        for stage, (blocks, width) in enumerate(zip(depth.layers, depth.widths), start=1):
            stride = 1 if stage == 1 else 2
            stride_t = strides_t[stage - 1]
            layers = []
            for i in range(blocks):
                temporal = stage in temporal_stages and inflate[stage - 1][i]
                first = i == 0
                b = block(cin, width, stride if first else 1, layout, temporal, stage,
                          stride_t if first else 1)
                cout = width * block.expansion
                if first and (stride != 1 or stride_t != 1 or cin != cout):
                    b.downsample = layout.shortcut(cin, cout, stride, stride_t, stage)
                layers.append(b)
                cin = cout
            self.add_module(f"layer{stage}", nn.Sequential(*layers))
            if stage == 1:
                # I3D's temporal max-pool after the first stage (MMAction2's ResNet3d `pool2`)
                self.pool2: nn.Module = (nn.MaxPool3d((2, 1, 1), (2, 1, 1)) if options.get("pool2")
                                         else nn.Identity())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        self._init_weights()

    def _stem_conv(self, cout: int, kernel: int, stride: int, options: dict[str, Any]) -> nn.Module:
        """The first conv: kt x k x k, stride (st, s, s); `stem_mid`: factorised 1xkxk, BN+ReLU, ktx1x1."""
        if not self.is_3d:
            return nn.Conv2d(3, cout, kernel, stride, kernel // 2, bias=False)
        kt, st = int(options.get("stem_kernel_t", 1)), int(options.get("stem_stride_t", 1))
        mid = options.get("stem_mid")
        if mid is None:
            return nn.Conv3d(3, cout, (kt, kernel, kernel), (st, stride, stride),
                             (kt // 2, kernel // 2, kernel // 2), bias=False)
        return nn.Sequential(
            nn.Conv3d(3, int(mid), (1, kernel, kernel), (1, stride, stride), (0, kernel // 2, kernel // 2),
                      bias=False),
            nn.BatchNorm3d(int(mid)),
            nn.ReLU(inplace=True),
            nn.Conv3d(int(mid), cout, (kt, 1, 1), (st, 1, 1), (kt // 2, 0, 0), bias=False),
        )

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
            return self.layer4(self.layer3(self.layer2(self.pool2(self.layer1(h)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        h = self.features(x)
        if self.is_3d:
            return self.fc(self.dropout(h.mean(dim=(2, 3, 4))))
        frame_logits = self.fc(self.dropout(h.mean(dim=(2, 3))))
        return frame_logits.view(b, t, -1).mean(dim=1)


def _plain(value: Any) -> Any:
    """Lists and tuples compare alike (a spec read back from JSON holds lists)."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _inflation(pattern: Any, layers: tuple[int, ...]) -> list[list[bool]]:
    """Per stage, per block: does the block get the scheme's temporal kernels (default: all do)."""
    if pattern is None:
        return [[True] * blocks for blocks in layers]
    if len(pattern) != len(layers):
        raise ValueError(f"inflate needs one entry per stage ({len(layers)}), got {pattern!r}")
    result = []
    for stage, (flags, blocks) in enumerate(zip(pattern, layers), start=1):
        flags = [flags] * blocks if isinstance(flags, int) else list(flags)
        if len(flags) != blocks:
            raise ValueError(f"inflate: stage {stage} has {blocks} blocks, the pattern gives {len(flags)}")
        result.append([bool(f) for f in flags])
    return result


def make_backbone(name: str) -> Depth:
    """Depth config by name, with a clear error for unknown names."""
    if name not in DEPTHS:
        raise ValueError(f"unknown backbone {name!r}; choose from {', '.join(DEPTHS)}")
    return DEPTHS[name]

