"""ModelSpec: everything needed to feed a model and read its output, saved in every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelSpec:
    """How a model was built and what input it expects."""

    scheme: str
    backbone: str
    num_classes: int
    frames: int = 8
    input_size: int = 224  # square crop fed to the model
    resize: int | None = None  # short side resized to this before the centre crop (None: input_size)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    channel_order: str = "RGB"  # "RGB" or "BGR"
    value_scale: float = 1.0  # 1.0: pixels in 0-1 before mean/std; 255.0: pixels in 0-255
    class_names: list[str] = field(default_factory=list)
    mirror_of: dict[str, str | None] = field(default_factory=dict)  # temporal mirror class per class
    class_kinds: dict[str, str] = field(default_factory=dict)  # "temporal" | "static" per class
    options: dict[str, Any] = field(default_factory=dict)  # build_model options, to rebuild exactly
    layout: str = "workbench"  # checkpoint layout the weights came from

    def __post_init__(self) -> None:
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)
        if not self.class_names:
            self.class_names = [f"class_{i}" for i in range(self.num_classes)]
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"spec has {len(self.class_names)} class names for {self.num_classes} classes"
            )
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, not {self.channel_order!r}")

    @property
    def resize_to(self) -> int:
        """Short-side size before the centre crop."""
        return self.resize or self.input_size

    def mirror_index(self, class_index: int) -> int | None:
        """Index of the temporal mirror class of `class_index`, if it has one."""
        mirror = self.mirror_of.get(self.class_names[class_index])
        return self.class_names.index(mirror) if mirror in self.class_names else None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON/weights_only-safe)."""
        data = asdict(self)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Inverse of to_dict; unknown keys are an error so a foreign file is not half-read."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown spec fields: {sorted(unknown)}")
        return cls(**data)
