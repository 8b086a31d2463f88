"""The authors' GSM / GSF / TSM / TSN releases, rebuilt with their parameter names and loaded strictly."""

from .bninception import BNInception
from .inceptionv3 import InceptionV3
from .layouts import Layout, detect_layout, release_state
from .loader import load_official, load_resaved, official_layouts
from .mobilenetv2 import OfficialMobileNetV2
from .official_resnet import OfficialResNet
from .video_model import OfficialVideoModel

__all__ = [
    "BNInception", "InceptionV3", "Layout", "OfficialMobileNetV2", "OfficialResNet", "OfficialVideoModel",
    "detect_layout", "load_official", "load_resaved", "official_layouts", "release_state",
]
