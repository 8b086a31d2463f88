"""torchvision's video models (r3d_18, mc3_18, r2plus1d_18, s3d) loaded from their plain state dicts."""

from .layouts import TorchvisionLayout, detect_layout
from .loader import load_torchvision, reload_torchvision, torchvision_layout
from .s3d import S3D

__all__ = ["S3D", "TorchvisionLayout", "detect_layout", "load_torchvision", "reload_torchvision",
           "torchvision_layout"]
