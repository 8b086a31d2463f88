"""Video models: one ResNet backbone, a temporal operator or conv builder per scheme."""

from .checkpoint import CheckpointError, file_sha256, load_model, save_model
from .pretrained import load_imagenet_weights
from .registry import SCHEMES, available_schemes, build_model
from .spec import ModelSpec

__all__ = [
    "SCHEMES", "CheckpointError", "ModelSpec", "available_schemes", "build_model",
    "file_sha256", "load_imagenet_weights", "load_model", "save_model",
]
