"""What a checkpoint file is: the layout recognised, the scheme and backbone it loads as, classes,
frames, preprocessing, parameters and FLOPs; for a file that does not load, what each release
family made of it (the closest match and which keys or shapes did not fit).

Plain data out (`CheckpointDescription`), for the CLI's `inspect` and the app's sidebar alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import CheckpointError
from .checkpoint import FORMAT, load_model, read_checkpoint
from .complexity import count_flops_of_shape, count_parameters
from .releases import RELEASE_FAMILIES, family_of_layout
from .schemes import SCHEMES, build_options
from .spec import ModelSpec

SHOWN_CLASSES = 5
# spec options that say where a release came from or what was assumed, not how it is built
PROVENANCE = ("sampling", "assumed", "from_config", "source_name", "release_entry")


@dataclass
class FamilyVerdict:
    """One release family's view of a file that did not load."""

    family: str
    title: str
    verdict: str  # "not its layout" or what did not fit


@dataclass
class CheckpointDescription:
    """A checkpoint file, described."""

    path: str
    loads: bool
    family: str | None = None  # "workbench" (our own format) or a release family's name
    family_title: str | None = None
    layout: str | None = None
    scheme: str | None = None
    scheme_title: str | None = None
    backbone: str | None = None
    num_classes: int | None = None
    classes: list[str] = field(default_factory=list)  # the first few class names
    frames: int | None = None
    input_size: int | None = None
    resize: int | None = None
    channel_order: str | None = None
    value_scale: float | None = None
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    params: int | None = None
    gflops: float | None = None  # one forward of one clip at the spec's frames and size
    options: dict[str, Any] = field(default_factory=dict)  # build options that differ from our defaults
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # why it does not load
    families: list[FamilyVerdict] = field(default_factory=list)  # each family's closest match
    top_level_keys: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-safe)."""
        return asdict(self)

    def lines(self) -> list[str]:
        """The description as text lines."""
        if not self.loads:
            out = [f"{self.path}: not loadable", f"  problem: {self.error}"]
            if self.top_level_keys:
                out.append(f"  top-level keys: {', '.join(self.top_level_keys)}")
            out += [f"  {v.family} ({v.title}): {v.verdict}" for v in self.families]
            return out
        preprocessing = (f"{self.channel_order} 0..{self.value_scale:g}, mean {_numbers(self.mean)}, "
                         f"std {_numbers(self.std)}; short side to {self.resize}, "
                         f"centre crop {self.input_size}")
        shown = ", ".join(self.classes) + (", ..." if (self.num_classes or 0) > len(self.classes) else "")
        out = [
            f"{self.path}",
            f"  layout: {self.layout} ({self.family_title})",
            f"  scheme: {self.scheme} ({self.scheme_title}) on backbone {self.backbone}",
            f"  classes: {self.num_classes} ({shown})",
            f"  frames: {self.frames}",
            f"  preprocessing: {preprocessing}",
            f"  parameters: {self.params:,}",
            f"  GFLOPs: {self.gflops:.2f} (one clip, {self.frames} frames of "
            f"{self.input_size}x{self.input_size} px)",
        ]
        if self.options:
            out.append("  backbone options: " + ", ".join(f"{k}={v}" for k, v in self.options.items()))
        return out + [f"  note: {note}" for note in self.notes]


def _numbers(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _notes(spec: ModelSpec) -> list[str]:
    notes = []
    sampling = spec.options.get("sampling") or {}
    if int(sampling.get("clip_len", 1)) > 1:
        step = f"every {sampling['frame_interval']} frames" if sampling.get("frame_interval", 1) > 1 else \
            f"at {sampling['frame_rate']} fps" if "frame_rate" in sampling else "consecutive"
        notes.append(f"trained on dense clips ({sampling['clip_len']} frames, {step}); the workbench samples "
                     f"{spec.frames} frames spread over the whole video (segment sampling)")
    for assumed in spec.options.get("assumed") or []:
        notes.append(f"assumed (the file has no meta.cfg): {assumed}")
    return notes


def describe_model(model: nn.Module, path: str | Path) -> CheckpointDescription:
    """The description of a model loaded from `path` (its spec, parameters, FLOPs on the meta device)."""
    spec: ModelSpec = model.spec
    family = family_of_layout(spec.layout) if spec.layout != "workbench" else None
    row = SCHEMES.get(spec.scheme)
    known = build_options()
    options = {k: v for k, v in spec.options.items() if k in known and k not in PROVENANCE}
    return CheckpointDescription(
        path=str(path), loads=True, family=family.name if family else "workbench",
        family_title=family.title if family else "a workbench checkpoint", layout=spec.layout,
        scheme=spec.scheme, scheme_title=row.title if row else None, backbone=spec.backbone,
        num_classes=spec.num_classes, classes=list(spec.class_names[:SHOWN_CLASSES]), frames=spec.frames,
        input_size=spec.input_size, resize=spec.resize_to, channel_order=spec.channel_order,
        value_scale=spec.value_scale, mean=list(spec.mean), std=list(spec.std),
        params=count_parameters(model),
        gflops=count_flops_of_shape(model, (1, spec.frames, 3, spec.input_size, spec.input_size)) / 1e9,
        options=options, notes=_notes(spec),
    )


def family_verdicts(data: dict, name: str, **overrides: Any) -> list[FamilyVerdict]:
    """What each release family makes of a file: not its layout, or what did not fit."""
    verdicts = []
    for family in RELEASE_FAMILIES.values():
        try:
            model = family.load(dict(data), name, **overrides)
        except CheckpointError as err:
            verdicts.append(FamilyVerdict(family.name, family.title, str(err)))
            continue
        verdict = "loads" if model is not None else f"not its layout (it expects {family.expects})"
        verdicts.append(FamilyVerdict(family.name, family.title, verdict))
    return verdicts


def describe_checkpoint(
    path: str | Path, *, unsafe_pickle: bool = False, **overrides: Any
) -> CheckpointDescription:
    """Describe a checkpoint file; one that cannot be read at all (missing, not a checkpoint, code in
    its pickle) is a CheckpointError, one that is read but does not load is described as such."""
    name = str(path)
    data = read_checkpoint(path, unsafe_pickle=unsafe_pickle)
    try:
        model = load_model(path, unsafe_pickle=unsafe_pickle, **overrides)
    except CheckpointError as err:
        verdicts = [] if data.get("format") == FORMAT else family_verdicts(data, name, **overrides)
        return CheckpointDescription(path=name, loads=False, error=str(err), families=verdicts,
                                     top_level_keys=sorted(map(str, data))[:8])
    return describe_model(model, path)
