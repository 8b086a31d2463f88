"""What every video model of the workbench is: (B, T, 3, H, W) clips in, (B, classes) logits out."""

from __future__ import annotations

from torch import nn

from .spec import ModelSpec
from .temporal import TemporalOp, temporal_ops


class VideoModel(nn.Module):
    """Base of our scheme networks and of the release models: `spec` attached, temporal ops listed.

    A forward writes no module state (the frame count comes from the clip), so one instance can run
    clips of any length from several threads at once.
    """

    spec: ModelSpec

    def identify(self, scheme: str, is_3d: bool, spec: ModelSpec | None) -> None:
        """Set what callers read off every model: its scheme, whether time is its own axis, and (when
        given) the spec with the release's frame count (a clip may have another length)."""
        self.scheme = scheme
        self.is_3d = is_3d
        if spec is not None:
            self.spec = spec
            self.frames = spec.frames

    def temporal_ops(self) -> list[tuple[str, TemporalOp]]:
        """(qualified name, module) of every temporal operator, in forward order."""
        return temporal_ops(self)
