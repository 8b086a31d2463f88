"""Captum attribution maps for any video model, one call shape for every method and scheme.

`attribute(model, clip, method)` takes one clip (1, T, 3, H, W) (or (T, 3, H, W)) and returns an
`Attribution` whose `map` is always (T, H, W): non-negative importance per input pixel and frame.
Schemes are never special-cased except where Captum's output layout forces it (LayerGradCam:
time folded into the batch for 2D schemes, kept as its own axis for 3D ones).

Defaults (all overridable through **opts):
- baselines: zeros in the model's normalised input space, i.e. the dataset-mean colour.
- Integrated Gradients: 32 Gauss-Legendre steps, all in one batch (internal_batch_size = steps),
  with Captum's convergence delta (convergence_delta=False skips its two extra forward passes).
- SmoothGrad: 8 noisy samples of Saliency, noise std 0.15 x the clip's value range.
- Occlusion: a window of 2 frames x 3 channels x (S/6)^2 pixels, stride 1 frame x S/12 pixels,
  baseline 0, 32 perturbed clips per forward pass.
- Temporal FeatureAblation: one frame (or `block` consecutive frames) replaced by the baseline.
- LayerGradCam: on `layer4` (the last stage), ReLU'd, upsampled to the input (bilinear per frame
  for 2D schemes, trilinear over time and space for 3D ones).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import (
    FeatureAblation,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import nn

from workbench.device import model_device

# Method names, in the order pages and tables show them; LABELS are their display names.
METHODS = (
    "saliency",
    "integrated_gradients",
    "smoothgrad",
    "input_x_gradient",
    "guided_backprop",
    "occlusion",
    "temporal_ablation",
    "gradcam",
)
LABELS = {
    "saliency": "Saliency",
    "integrated_gradients": "Integrated Gradients",
    "smoothgrad": "SmoothGrad",
    "input_x_gradient": "Input × Gradient",
    "guided_backprop": "Guided Backprop",
    "occlusion": "Occlusion",
    "temporal_ablation": "Temporal ablation",
    "gradcam": "Grad-CAM",
}
# Methods whose cost is many forward passes: pages show progress for them.
EXPENSIVE = frozenset({"integrated_gradients", "smoothgrad", "occlusion"})


@dataclass
class Attribution:
    """One attribution of one clip by one model and method."""

    method: str
    target: int
    map: np.ndarray  # (T, H, W) float32, non-negative importance
    signed_map: np.ndarray  # (T, H, W) float32, channel-summed signed attribution
    raw: np.ndarray | None  # (T, C, H, W) float32 when the method attributes every input value
    options: dict[str, Any] = field(default_factory=dict)
    delta: float | None = None  # Integrated Gradients' convergence delta (completeness error)
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        """Number of frames in the map."""
        return int(self.map.shape[0])


def as_clip(clip: torch.Tensor) -> torch.Tensor:
    """A single clip as (1, T, C, H, W) float32."""
    if clip.dim() == 4:
        clip = clip.unsqueeze(0)
    if clip.dim() != 5 or clip.shape[0] != 1:
        raise ValueError(f"expected one clip (1, T, C, H, W) or (T, C, H, W), got {tuple(clip.shape)}")
    return clip.float()


def predicted_class(model: nn.Module, clip: torch.Tensor) -> int:
    """The class the model predicts for the clip."""
    with torch.no_grad():
        return int(model(as_clip(clip).to(model_device(model))).argmax(dim=1).item())


def class_probabilities(model: nn.Module, clips: torch.Tensor, target: int, batch: int = 32) -> np.ndarray:
    """Softmax probability of `target` for each clip of a (N, T, C, H, W) batch."""
    out = []
    with torch.no_grad():
        for start in range(0, clips.shape[0], batch):
            logits = model(clips[start : start + batch].to(model_device(model)))
            out.append(torch.softmax(logits.float(), dim=1)[:, target].cpu())
    return torch.cat(out).numpy()


def default_window(size: int) -> tuple[int, int]:
    """Occlusion (window, stride) in pixels for an input of `size`: 1/6 and 1/12 of the side."""
    window = max(2, round(size / 6))
    return window, max(1, window // 2)


def _resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(f"model has no layer {layer!r}")
    return modules[layer]


def _gradcam(model: nn.Module, clip: torch.Tensor, target: int, layer: str | nn.Module) -> torch.Tensor:
    """Grad-CAM on `layer`, brought back to (T, H, W) whatever the scheme's feature layout."""
    _, frames, _, height, width = clip.shape
    cam = LayerGradCam(model, _resolve_layer(model, layer)).attribute(
        clip, target=target, relu_attributions=True
    )
    if cam.dim() == 4:  # 2D scheme: (B*T, 1, h, w), time folded into the batch
        cam = F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)
        return cam.view(frames, height, width)
    if cam.dim() == 5:  # 3D scheme: (B, 1, T', h, w); T' may be shorter than T after temporal strides
        cam = F.interpolate(cam, size=(frames, height, width), mode="trilinear", align_corners=False)
        return cam.view(frames, height, width)
    raise ValueError(f"layer output of shape {tuple(cam.shape)} is not a feature map")


def _temporal_mask(frames: int, block: int) -> torch.Tensor:
    """Feature mask giving frame t the group t // block, broadcast over channels and pixels."""
    return (torch.arange(frames) // block).view(1, frames, 1, 1, 1)


def attribute(
    model: nn.Module,
    clip: torch.Tensor,
    method: str,
    target: int | None = None,
    **opts: Any,
) -> Attribution:
    """Attribute `target` (default: the predicted class) of one clip with `method` (see METHODS)."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)}")
    model.eval()  # BatchNorm in train mode makes attributions depend on the batch (FIELD_NOTES)
    clip = as_clip(clip).detach().to(model_device(model))  # the model may live on a GPU
    _, frames, _, height, width = clip.shape
    if target is None:
        target = predicted_class(model, clip)
    baseline = float(opts.get("baseline", 0.0))
    start = time.perf_counter()
    raw: torch.Tensor | None = None
    own_map: torch.Tensor | None = None
    delta: float | None = None
    used: dict[str, Any] = {}
    inputs = clip.clone().requires_grad_(True)
    if method == "saliency":
        raw = Saliency(model).attribute(inputs, target=target, abs=True)
    elif method == "integrated_gradients":
        steps = int(opts.get("steps", 32))
        batch = int(opts.get("internal_batch_size", steps))
        with_delta = bool(opts.get("convergence_delta", True))
        used = {"steps": steps, "internal_batch_size": batch, "baseline": baseline}
        # the convergence delta costs two extra forward passes (clip and baseline): on by default,
        # since it is the completeness check the maps are judged by
        out = IntegratedGradients(model).attribute(
            inputs, baselines=baseline, target=target, n_steps=steps,
            internal_batch_size=batch, return_convergence_delta=with_delta,
        )
        raw, delta = (out[0], float(out[1].abs().max())) if with_delta else (out, None)
    elif method == "smoothgrad":
        samples = int(opts.get("samples", 8))
        noise = float(opts.get("noise", 0.15))
        stdev = noise * float(clip.max() - clip.min())
        used = {"samples": samples, "noise": noise}
        raw = NoiseTunnel(Saliency(model)).attribute(
            inputs, nt_type="smoothgrad", nt_samples=samples, stdevs=stdev,
            nt_samples_batch_size=int(opts.get("batch", samples)), target=target, abs=True,
        )
    elif method == "input_x_gradient":
        raw = InputXGradient(model).attribute(inputs, target=target)
    elif method == "guided_backprop":
        raw = GuidedBackprop(model).attribute(inputs, target=target)
    elif method == "occlusion":
        window, stride = default_window(min(height, width))
        window = int(opts.get("window", window))
        stride = int(opts.get("stride", stride))
        window_frames = min(frames, int(opts.get("window_frames", 2)))
        stride_frames = int(opts.get("stride_frames", 1))
        used = {"window": window, "stride": stride, "window_frames": window_frames,
                "stride_frames": stride_frames, "baseline": baseline}
        raw = Occlusion(model).attribute(
            clip, sliding_window_shapes=(window_frames, 3, window, window),
            strides=(stride_frames, 3, stride, stride), baselines=baseline, target=target,
            perturbations_per_eval=int(opts.get("perturbations_per_eval", 32)),
        )
    elif method == "temporal_ablation":
        block = max(1, int(opts.get("block", 1)))
        used = {"block": block, "baseline": baseline}
        per_frame = FeatureAblation(model).attribute(
            clip, baselines=baseline, target=target,
            feature_mask=_temporal_mask(frames, block).to(clip.device),
            perturbations_per_eval=int(opts.get("perturbations_per_eval", frames)),
        )
        # every value of a frame holds that frame's logit drop: one number per frame, spread flat
        own_map = per_frame[0, :, 0].detach()
    elif method == "gradcam":
        layer = opts.get("layer", "layer4")
        used = {"layer": layer if isinstance(layer, str) else type(layer).__name__}
        own_map = _gradcam(model, inputs, target, layer).detach()
    seconds = time.perf_counter() - start
    if raw is not None:
        raw_np = raw.detach()[0].float().cpu().numpy()
        signed = raw_np.sum(axis=1)
        importance = np.abs(raw_np).sum(axis=1)
    else:
        assert own_map is not None
        raw_np = None
        signed = own_map.float().cpu().numpy()
        # Grad-CAM is ReLU'd already; a frame whose removal raises the score matters as much as one
        # whose removal lowers it, so ablation importance is the size of the change
        importance = np.abs(signed)
    return Attribution(
        method=method, target=int(target), map=importance.astype(np.float32),
        signed_map=signed.astype(np.float32), raw=None if raw_np is None else raw_np.astype(np.float32),
        options=used, delta=delta, seconds=seconds,
    )


def temporal_profile(attribution_map: np.ndarray) -> np.ndarray:
    """Share of the attribution mass in each frame of a (T, H, W) map (sums to 1; flat if empty)."""
    mass = np.abs(np.asarray(attribution_map, dtype=np.float64)).reshape(attribution_map.shape[0], -1).sum(1)
    total = mass.sum()
    if not np.isfinite(total) or total <= 0:
        return np.full(mass.shape, 1.0 / mass.size)
    return mass / total


def temporal_spread(profile: np.ndarray) -> float:
    """Entropy of a per-frame profile over log(T): 1 = all frames used equally, 0 = one frame."""
    p = np.asarray(profile, dtype=np.float64)
    if p.size < 2:
        return 0.0
    nonzero = p[p > 0]
    return float(-(nonzero * np.log(nonzero)).sum() / math.log(p.size))


def display_frames(clip: torch.Tensor, spec: Any) -> np.ndarray:
    """The model's input clip back as uint8 (T, H, W, 3) RGB (undoes `preprocess`'s normalisation)."""
    x = as_clip(clip)[0].detach()
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    pixels = (x * std + mean) * (255.0 / spec.value_scale)
    if spec.channel_order == "BGR":
        pixels = pixels.flip(1)
    return pixels.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).numpy()
