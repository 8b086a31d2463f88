"""Video models: one ResNet backbone, a temporal operator or conv builder per scheme, release loaders."""

from ..errors import CheckpointError
from ..fingerprints import file_sha256
from .checkpoint import load_model, save_model
from .pretrained import load_imagenet_weights
from .registry import build_model
from .schemes import SCHEMES, Scheme, available_schemes, get_scheme, register_scheme
from .spec import ModelSpec
