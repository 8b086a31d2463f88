"""The released models' outer shell: a per-frame backbone, `new_fc`, and the average consensus.

GSM, GSF and TSM all save `base_model.*` (the 2D backbone with temporal operators inside) and
`new_fc.*` (the classifier that replaced the backbone's last layer), so one wrapper with those two
attribute names holds every release; its state dict is the release's minus the `module.` prefix.
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import VideoModel
from ..frames import check_clip, folded_frames
from ..spec import ModelSpec


class OfficialVideoModel(VideoModel):
    """(B, T, 3, H, W) -> (B, classes): backbone features per frame, new_fc, mean over frames."""

    def __init__(self, base_model: nn.Module, feature_dim: int, num_classes: int, spec: ModelSpec) -> None:
        super().__init__()
        self.base_model = base_model
        # the releases apply dropout before new_fc while training; at eval it is the identity
        self.dropout = nn.Dropout(0.5)
        self.new_fc = nn.Linear(feature_dim, num_classes)
        self.identify(spec.scheme, False, spec)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled per-frame features (B*T, feature_dim)."""
        b, t = check_clip(x)
        with folded_frames(t):  # the clip's length, for the temporal operators (never stored)
            return self.base_model(x.reshape(b * t, *x.shape[2:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        frame_logits = self.new_fc(self.dropout(self.features(x)))
        return frame_logits.view(b, t, -1).mean(dim=1)
