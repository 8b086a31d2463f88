"""Inside GSM/GSF: capture gates with hooks, gate statistics, gate-motion alignment, gate interventions.

Gate tensors are the output of each gated operator's `.gate` submodule: (B, G, T, h, w), tanh
values in [-1, 1]. Group g shifts backward in time when g is even (frame t receives gate * x from
t+1) and forward when g is odd (frame t receives gate * x from t-1); see
`workbench.models.temporal.GateShift`.

Interventions replace gates through forward hooks on `<op>.gate` (constant 0, +1 or -1). A gate is
per group and position, not per channel, so TSM's pattern (1/8 of the channels back, 1/8 forward)
has no gate equivalent; the "tsm" intervention instead replaces the whole operator output by TSM's
shift of the operator input. In a basic-block backbone that is exactly the TSM network with the
same weights (tested); for GSF it also bypasses the fusion.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from workbench.device import model_device
from workbench.models.spec import ModelSpec
from workbench.models.temporal import GateShift, GateShiftFuse, TemporalShift
from workbench.video import VideoSource, preprocess, read_frames, sample_indices, video_info

from .hooks import capture, replace_outputs

INTERVENTIONS = ("zero", "plus", "minus", "tsm")
INTERVENTION_MEANING = {
    "none": "the model as trained",
    "zero": "gates forced to 0: nothing moves (the layer acts like TSN)",
    "plus": "gates forced to +1: the whole group moves (frame t gets only its neighbour)",
    "minus": "gates forced to -1: the group moves with a minus sign and 2x is kept (differencing)",
    "tsm": "operator output replaced by TSM's fixed shift of its input (1/8 back, 1/8 forward)",
}


def direction(group: int) -> str:
    """Which way a gate group moves features (even groups backward, odd forward)."""
    return "backward (t gets t+1)" if group % 2 == 0 else "forward (t gets t-1)"


@dataclass
class LayerGates:
    """One gated operator's captured tensors for one clip batch."""

    name: str
    kind: str  # "gsm" | "gsf"
    gates: torch.Tensor  # (B, G, T, h, w) in [-1, 1]
    before: torch.Tensor  # operator input, gated channels only: (B, T, C, h, w)
    # operator output, same channels (B, T, C, h, w); after GSF's fusion, and in the interleaved
    # channel order when the operator was built with interleave=True
    after: torch.Tensor

    @property
    def groups(self) -> int:
        """Number of gate groups."""
        return self.gates.shape[1]


@dataclass
class GateRun:
    """Gates of every gated operator on one clip batch, with the model's logits."""

    layers: list[LayerGates]
    logits: torch.Tensor  # (B, classes)

    def layer(self, name: str) -> LayerGates:
        """The captured layer with this qualified name."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no gated layer named {name!r}")


def gated_ops(model: nn.Module) -> list[tuple[str, GateShift]]:
    """(name, module) of every GSM/GSF operator in forward order; ValueError when there is none."""
    ops = [(n, m) for n, m in model.named_modules() if isinstance(m, GateShift)]
    if not ops:
        scheme = getattr(getattr(model, "spec", None), "scheme", type(model).__name__)
        raise ValueError(f"{scheme} model has no GSM/GSF gates (gate analyses need a gsm or gsf model)")
    return ops


def _unfold(x: torch.Tensor, frames: int) -> torch.Tensor:
    return x.reshape(x.shape[0] // frames, frames, *x.shape[1:])


@torch.no_grad()
def capture_gates(model: nn.Module, clip: torch.Tensor) -> GateRun:
    """Run `clip` (B, T, 3, H, W) once and capture gates, inputs and outputs of each gated op."""
    ops = gated_ops(model)
    names = [n for n, _ in ops] + [f"{n}.gate" for n, _ in ops]
    model.eval()
    with capture(model, names, inputs=True) as seen:
        logits = model(clip.to(model_device(model)))
    frames = clip.shape[1]
    layers = []
    for name, op in ops:
        active = op.channels  # GSF may gate only part of its input channels
        # analyses of the captured tensors run on the CPU, wherever the model ran
        before = _unfold(seen.inputs[name], frames)[:, :, :active].cpu()
        after = _unfold(seen.outputs[name], frames)[:, :, :active].cpu()
        kind = "gsf" if isinstance(op, GateShiftFuse) else "gsm"
        layers.append(LayerGates(name, kind, seen.outputs[f"{name}.gate"].cpu(), before, after))
    return GateRun(layers, logits.detach().cpu())


def gate_statistics(run: GateRun) -> pd.DataFrame:
    """Per layer, group and time step: mean, |mean|, shares of positive/negative/near-full gates."""
    rows = []
    for index, layer in enumerate(run.layers):
        g = layer.gates
        for group in range(layer.groups):
            for t in range(g.shape[2]):
                values = g[:, group, t]
                rows.append({
                    "layer": layer.name, "layer_index": index, "group": group,
                    "direction": direction(group), "time": t,
                    "mean": float(values.mean()), "abs_mean": float(values.abs().mean()),
                    "positive_share": float((values > 0).float().mean()),
                    "negative_share": float((values < 0).float().mean()),
                    "saturated_share": float((values.abs() > 0.9).float().mean()),
                    "positions": values.numel(),
                })
    return pd.DataFrame(rows)


def gate_histogram(run: GateRun, bins: int = 20) -> pd.DataFrame:
    """Distribution of gate values per layer and group on fixed bins over [-1, 1]."""
    edges = np.linspace(-1.0, 1.0, bins + 1)
    rows = []
    for layer in run.layers:
        for group in range(layer.groups):
            values = layer.gates[:, group].flatten().numpy()
            counts, _ = np.histogram(np.clip(values, -1.0, 1.0), bins=edges)
            for i, count in enumerate(counts):
                rows.append({
                    "layer": layer.name, "group": group, "direction": direction(group),
                    "bin_left": edges[i], "bin_right": edges[i + 1],
                    "bin_center": (edges[i] + edges[i + 1]) / 2,
                    "count": int(count), "share": float(count / max(1, values.size)),
                })
    return pd.DataFrame(rows)


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(..., h, w) -> (..., size, size), bilinear: a feature-resolution map laid over the frames."""
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    up = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
    return up.reshape(*lead, size, size)


def gate_maps(layer: LayerGates, size: int, batch: int = 0) -> np.ndarray:
    """Gate maps of one clip upsampled to the input size: (G, T, size, size)."""
    return upsample(layer.gates[batch], size).numpy()


# --- clip geometry: frames and masks cropped exactly like the model input -----------------------


def _neutral(spec: ModelSpec) -> ModelSpec:
    """The spec's geometry with an identity colour transform: preprocess then returns 0-1 RGB."""
    return dataclasses.replace(spec, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), value_scale=1.0,
                               channel_order="RGB")


def clip_indices(video: VideoSource, spec: ModelSpec) -> np.ndarray:
    """The frame indices `load_clip` samples at test time (segment centres)."""
    return sample_indices(video_info(video)["num_frames"], spec.frames, mode="segment", train=False)


def display_frames(video: VideoSource, spec: ModelSpec) -> np.ndarray:
    """The model's input frames for display: uint8 (T, S, S, 3), same sampling, resize and crop."""
    frames = read_frames(video, clip_indices(video, spec))
    rgb = preprocess(frames, _neutral(spec))  # (T, 3, S, S) in 0-1
    return (rgb.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def clip_mask(mask: np.ndarray, video: VideoSource, spec: ModelSpec) -> torch.Tensor:
    """A video's bool mask (T0, H, W) sampled, resized and cropped like the clip: float (T, S, S)."""
    picked = torch.from_numpy(np.asarray(mask)[clip_indices(video, spec)].astype(np.uint8) * 255)
    as_rgb = picked[..., None].expand(*picked.shape, 3).contiguous()
    return preprocess(as_rgb, _neutral(spec))[:, 0]


def probe_mask(video: str | Path) -> np.ndarray | None:
    """The ground-truth mask of a probe clip (`<root>/<class>/<id>.mp4` with `<root>/masks/<id>.npz`)."""
    from workbench.probe import load_mask, mask_path

    path = Path(video)
    root = path.parent.parent
    if not mask_path(root, path).is_file():
        return None
    return load_mask(root, path)


# --- gate-motion alignment ------------------------------------------------------------------------


def frame_difference(clip: torch.Tensor) -> torch.Tensor:
    """Motion magnitude per frame (B, T, H, W): mean |x_t - x_t-1| and |x_t+1 - x_t| over channels."""
    diff = (clip[:, 1:] - clip[:, :-1]).abs().mean(dim=2)  # (B, T-1, H, W)
    zero = diff.new_zeros(diff[:, :1].shape)
    before = torch.cat((zero, diff), dim=1)
    after = torch.cat((diff, zero), dim=1)
    count = torch.full((clip.shape[1],), 2.0)
    count[0] = count[-1] = 1.0  # end frames have one neighbour
    return (before + after) / count.view(1, -1, 1, 1)


def pool_to(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., H, W) -> (..., height, width) by area averaging (a mask becomes a coverage fraction)."""
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    return F.adaptive_avg_pool2d(flat, (height, width)).reshape(*lead, height, width)


def gate_magnitude(layer: LayerGates) -> torch.Tensor:
    """|gate| averaged over groups: (B, T, h, w)."""
    return layer.gates.abs().mean(dim=1)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denom = float(a.norm() * b.norm())
    return float((a * b).sum()) / denom if denom > 0 else float("nan")


def motion_alignment(run: GateRun, clip: torch.Tensor, mask: torch.Tensor | None = None) -> pd.DataFrame:
    """Per layer: correlation of |gate| with frame difference and, with a mask (B or 1, T, H, W),
    the share of gate mass inside the object against the object's area."""
    motion = frame_difference(clip)
    rows = []
    for index, layer in enumerate(run.layers):
        magnitude = gate_magnitude(layer)
        h, w = magnitude.shape[-2:]
        row = {"layer": layer.name, "layer_index": index, "resolution": f"{h}x{w}",
               "motion_correlation": _pearson(magnitude, pool_to(motion, h, w))}
        if mask is not None:
            cover = pool_to(mask.float().expand(magnitude.shape[0], *mask.shape[-3:]), h, w)
            mass = float(magnitude.sum())
            row["gate_in_mask_share"] = float((magnitude * cover).sum()) / mass if mass > 0 else float("nan")
            row["mask_area"] = float(cover.mean())
            area = row["mask_area"]
            row["concentration"] = row["gate_in_mask_share"] / area if area else float("nan")
            row["mask_correlation"] = _pearson(magnitude, cover)
        rows.append(row)
    return pd.DataFrame(rows)


def alignment_maps(
    layer: LayerGates, clip: torch.Tensor, mask: torch.Tensor | None = None, batch: int = 0
) -> dict[str, np.ndarray]:
    """The maps behind one layer's alignment numbers, at its feature resolution: name -> (T, h, w)."""
    magnitude = gate_magnitude(layer)[batch]
    h, w = magnitude.shape[-2:]
    motion = pool_to(frame_difference(clip)[batch], h, w)
    maps = {"|gate|": magnitude.numpy(), "frame difference": motion.numpy()}
    if mask is not None:
        maps["object mask"] = pool_to(mask.float()[min(batch, mask.shape[0] - 1)], h, w).numpy()
    return maps


# --- interventions ----------------------------------------------------------------------------------


def _constant_gate(value: float):
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return torch.full_like(output, value)

    return hook


def _tsm_output(op: GateShift, fraction: float):
    """Hook replacing the whole operator output by TSM's shift of its input (fold = C * fraction)."""

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        return TemporalShift(x.shape[1], op.frames, fraction)(x)

    return hook


def intervention_hooks(model: nn.Module, layers: list[str], mode: str, tsm_fraction: float = 1 / 8) -> dict:
    """Module name -> replacement hook forcing `mode` on the named gated layers."""
    ops = dict(gated_ops(model))
    unknown = [name for name in layers if name not in ops]
    if unknown:
        raise KeyError(f"no gated layer named {unknown[0]!r}")
    if mode == "tsm":
        return {name: _tsm_output(ops[name], tsm_fraction) for name in layers}
    values = {"zero": 0.0, "plus": 1.0, "minus": -1.0}
    if mode not in values:
        raise ValueError(f"intervention must be one of {INTERVENTIONS}, not {mode!r}")
    return {f"{name}.gate": _constant_gate(values[mode]) for name in layers}


@torch.no_grad()
def run_intervened(model: nn.Module, clip: torch.Tensor, layers: list[str], mode: str) -> torch.Tensor:
    """Logits with `mode` forced on `layers` (hooks removed afterwards)."""
    model.eval()
    with replace_outputs(model, intervention_hooks(model, layers, mode)):
        return model(clip.to(model_device(model))).cpu()


def _targets(model: nn.Module, per_layer: bool) -> list[tuple[str, list[str]]]:
    names = [n for n, _ in gated_ops(model)]
    return [("all layers", names)] + ([(n, [n]) for n in names] if per_layer else [])


@torch.no_grad()
def intervention_table(
    model: nn.Module, clip: torch.Tensor, modes: tuple[str, ...] = INTERVENTIONS, per_layer: bool = True
) -> pd.DataFrame:
    """Prediction change on one clip (batch 0) per target (all layers, each layer) and mode."""
    names = model.spec.class_names
    base = model.eval()(clip.to(model_device(model)))[0].softmax(-1).cpu()
    top = int(base.argmax())
    rows = [{"target": "none", "mode": "none", "predicted": names[top], "probability": float(base[top]),
             "original_class_probability": float(base[top]), "probability_change": 0.0,
             "prediction_changed": False, "total_variation": 0.0}]
    for target, layers in _targets(model, per_layer):
        for mode in modes:
            prob = run_intervened(model, clip, layers, mode)[0].softmax(-1)
            pred = int(prob.argmax())
            rows.append({
                "target": target, "mode": mode, "predicted": names[pred], "probability": float(prob[pred]),
                "original_class_probability": float(prob[top]),
                "probability_change": float(prob[top] - base[top]),
                "prediction_changed": pred != top,
                "total_variation": float((prob - base).abs().sum() / 2),
            })
    return pd.DataFrame(rows)


@torch.no_grad()
def intervention_accuracy(
    model: nn.Module, data: str | Path, modes: tuple[str, ...] = INTERVENTIONS, per_layer: bool = True,
    max_clips: int | None = None, batch_size: int = 32,
) -> pd.DataFrame:
    """Accuracy on a labelled dataset per target and mode, against the unmodified model."""
    from workbench.datasets import open_dataset

    dataset = open_dataset(data).with_spec(model.spec)
    classes = model.spec.class_names
    if list(dataset.classes) != list(classes):
        raise ValueError("dataset classes differ from the model's classes")
    count = len(dataset) if max_clips is None else min(max_clips, len(dataset))
    # decoded once and kept: every target x mode reruns the same clips (max_clips bounds the memory)
    clips, labels = zip(*(dataset[i] for i in range(count)))
    batches = torch.stack(clips).split(batch_size)
    truth = torch.tensor(labels)
    model.eval()

    def accuracy(layers: list[str], mode: str | None) -> float:
        device = model_device(model)
        run = ((lambda b: model(b.to(device)).cpu()) if mode is None
               else (lambda b: run_intervened(model, b, layers, mode)))
        predicted = torch.cat([run(b).argmax(-1) for b in batches])
        return float((predicted == truth).float().mean())

    base = accuracy([], None)
    rows = [{"target": "none", "mode": "none", "accuracy": base, "accuracy_change": 0.0, "clips": count}]
    for target, layers in _targets(model, per_layer):
        for mode in modes:
            acc = accuracy(layers, mode)
            rows.append({"target": target, "mode": mode, "accuracy": acc, "accuracy_change": acc - base,
                         "clips": count})
    return pd.DataFrame(rows)


# --- everything for one clip: what the page shows and the CLI exports ----------------------------


@dataclass
class GateReport:
    """All gate analyses of one model on one video (batch of one clip)."""

    run: GateRun
    frames: np.ndarray  # uint8 (T, S, S, 3), the model's input frames
    statistics: pd.DataFrame
    histogram: pd.DataFrame
    routing: dict[str, pd.DataFrame]  # operator ("gsm"/"gsf", "tsm") -> per layer and frame
    alignment: pd.DataFrame
    interventions: pd.DataFrame
    mask: torch.Tensor | None  # (1, T, S, S) object coverage, probe clips only
    clip: torch.Tensor  # (1, T, 3, S, S), the model input


def gate_report(
    model: nn.Module, video: VideoSource, mask: np.ndarray | None = None,
    modes: tuple[str, ...] = INTERVENTIONS, per_layer: bool = True,
) -> GateReport:
    """Capture gates on `video` and compute statistics, routing, alignment and interventions."""
    from workbench.video import load_clip

    from .shifts import gate_routing, tsm_routing

    spec = model.spec
    clip = load_clip(video, spec)
    run = capture_gates(model, clip)
    clip_cover = clip_mask(mask, video, spec).unsqueeze(0) if mask is not None else None
    kind = run.layers[0].kind
    return GateReport(
        run=run, frames=display_frames(video, spec), statistics=gate_statistics(run),
        histogram=gate_histogram(run), routing={kind: gate_routing(run), "tsm": tsm_routing(run)},
        alignment=motion_alignment(run, clip, clip_cover),
        interventions=intervention_table(model, clip, modes, per_layer), mask=clip_cover, clip=clip,
    )
