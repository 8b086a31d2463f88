"""MMAction2 1.x checkpoints (TSN, TSM, I3D, R(2+1)D, ir-CSN, C3D) loaded strictly into our models."""

from .c3d import C3D
from .config import checkpoint_config, parse_config
from .layouts import MMActionLayout, read_layout, release_state
from .loader import load_mmaction, mmaction_layout, reload_mmaction

__all__ = ["C3D", "MMActionLayout", "checkpoint_config", "load_mmaction", "mmaction_layout", "parse_config",
           "read_layout", "release_state", "reload_mmaction"]
