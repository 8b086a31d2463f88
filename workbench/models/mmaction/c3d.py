"""C3D (Tran et al., ICCV 2015) as MMAction2 builds it: eight 3x3x3 convs in a VGG-style stack.

Convs have biases and no norm; max-pools halve space after conv1a and space and time after every
later group; fc6 takes the flattened 512x1x4x4 map, so the network runs on 16 frames of 112x112 px
only. `conv5b` is the last spatial feature map (the Grad-CAM layer). Separate ReLU modules per layer
(Captum's DeepLift needs them); MMAction2 shares one for fc6/fc7, the same function.
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import VideoModel
from ..frames import check_clip
from ..spec import ModelSpec

# (name, in, out) of the convs, a pool after each group: (kernel, stride, padding)
CONVS: tuple[tuple[str, int, int], ...] = (
    ("conv1a", 3, 64), ("conv2a", 64, 128), ("conv3a", 128, 256), ("conv3b", 256, 256),
    ("conv4a", 256, 512), ("conv4b", 512, 512), ("conv5a", 512, 512), ("conv5b", 512, 512),
)
POOLS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]] = {
    "conv1a": ((1, 2, 2), (1, 2, 2), (0, 0, 0)), "conv2a": ((2, 2, 2), (2, 2, 2), (0, 0, 0)),
    "conv3b": ((2, 2, 2), (2, 2, 2), (0, 0, 0)), "conv4b": ((2, 2, 2), (2, 2, 2), (0, 0, 0)),
    "conv5b": ((2, 2, 2), (2, 2, 2), (0, 1, 1)),
}
FRAMES, SIZE, FEATURES = 16, 112, 8192


class C3D(VideoModel):
    """(B, 16, 3, 112, 112) -> (B, classes): conv stack, fc6, fc7, then the head's fc (MMAction2's fc_cls)."""

    def __init__(self, num_classes: int, spec: ModelSpec | None = None) -> None:
        super().__init__()
        pool = 1
        for name, cin, cout in CONVS:
            self.add_module(name, nn.Conv3d(cin, cout, 3, 1, 1, bias=True))
            self.add_module(f"relu{name[4:]}", nn.ReLU(inplace=True))
            if name in POOLS:
                self.add_module(f"pool{pool}", nn.MaxPool3d(*POOLS[name]))
                pool += 1
        self.fc6 = nn.Linear(FEATURES, 4096)
        self.relu6 = nn.ReLU(inplace=True)
        self.dropout6 = nn.Dropout(0.5)
        self.fc7 = nn.Linear(4096, 4096)
        self.relu7 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.5)  # the head's (I3DHead) dropout before fc_cls
        self.fc = nn.Linear(4096, num_classes)
        self.identify("c3d", True, spec)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """conv5b's output after its ReLU, (B, 512, 2, 7, 7) for a 16x112x112 clip."""
        _, frames = check_clip(x)
        if frames != FRAMES or tuple(x.shape[-2:]) != (SIZE, SIZE):
            raise ValueError(f"C3D's fc6 takes {FEATURES} features: clips of {FRAMES} frames of "
                             f"{SIZE}x{SIZE} px, "
                             f"not {frames} of {x.shape[-2]}x{x.shape[-1]}")
        h = x.transpose(1, 2)
        pool = 1
        for name, _, _ in CONVS:
            h = getattr(self, f"relu{name[4:]}")(getattr(self, name)(h))
            if name in POOLS and name != "conv5b":
                h = getattr(self, f"pool{pool}")(h)
                pool += 1
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool5(self.features(x)).flatten(1)
        h = self.dropout6(self.relu6(self.fc6(h)))
        h = self.relu7(self.fc7(h))
        return self.fc(self.dropout(h))
