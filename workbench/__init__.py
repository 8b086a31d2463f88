"""Gate-Shift Workbench: build, load and look inside video action-recognition models."""

from .allocator import tune_from_environment
from .demo import demo_checkpoints, demo_probe_dir
from .errors import CheckpointError, UserError, VideoError
from .fingerprints import file_sha256
from .models import SCHEMES, ModelSpec, available_schemes, build_model, load_model, save_model
from .models.schemes import register_scheme
from .version import VERSION as __version__
from .video import load_clip

tune_from_environment()  # WORKBENCH_MALLOC=keep: faster passes, peaks over the budget (allocator.py)
