"""Gate-Shift Workbench: build, load and look inside video action-recognition models."""

from .models import (
    SCHEMES,
    CheckpointError,
    ModelSpec,
    available_schemes,
    build_model,
    file_sha256,
    load_model,
    save_model,
)

__version__ = "0.1.0"


def load_clip(video, spec):  # noqa: ANN001 - thin re-export, see workbench.video.load_clip
    """Decode `video` (path or file object) and preprocess it as `spec` says -> (1, T, 3, H, W)."""
    from .video import load_clip as _load_clip

    return _load_clip(video, spec)


__all__ = [
    "SCHEMES", "CheckpointError", "ModelSpec", "available_schemes", "build_model",
    "file_sha256", "load_clip", "load_model", "save_model", "__version__",
]
