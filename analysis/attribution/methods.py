"""The attribution method table and `attribute`: one call shape for every Captum method and scheme.

`attribute(model, clip, method)` takes one clip (1, T, 3, H, W) (or (T, 3, H, W)) and returns an
`Attribution` whose `map` is always (T, H, W): non-negative importance per input pixel and frame.
Schemes are never special-cased except where Captum's output layout forces it (LayerGradCam:
time folded into the batch for 2D schemes, kept as its own axis for 3D ones).

Each row of `METHODS` names its Captum method, its options as a typed dataclass (defaults below;
an unknown option is an error, not silently ignored) and how it runs. Every method runs on a
private view of the model (`workbench.models.views`): Captum's Grad-CAM and Guided Backprop attach
hooks, and a model shared with other threads must never carry them.

Defaults:
- baselines: zeros in the model's normalised input space, i.e. the dataset-mean colour.
- Integrated Gradients: 32 Gauss-Legendre steps, as many per pass as the memory budget holds,
  with Captum's convergence delta (convergence_delta=False skips its two extra forward passes).
- SmoothGrad: 8 noisy samples of Saliency, noise std 0.15 x the clip's value range.
- Occlusion: a window of 2 frames x 3 channels x (S/6)^2 pixels, stride 1 frame x S/12 pixels,
  baseline 0, as many perturbed clips per forward pass as the memory budget holds.
- Items per pass an option leaves open (None) follow from the model's measured footprint and the
  `memory` budget of `attribute` (workbench.models.memory; the table's `batching` column says which
  option); a method that cannot fit one clip is refused before it runs.
- Temporal FeatureAblation: one frame (or `block` consecutive frames) replaced by the baseline.
- LayerGradCam: on the model's last spatial feature stage (`workbench.models.feature_layers`: `layer4`
  of a ResNet, `inception_5b` of BN-Inception, `mixed_5c` of S3D, ...), ReLU'd, upsampled to the input
  (bilinear per frame for 2D schemes, trilinear over time and space for 3D ones).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
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

from workbench.allocator import release_after_pass
from workbench.device import model_device
from workbench.errors import AnalysisError, OptionError
from workbench.models.feature_layers import feature_stage
from workbench.models.inference import predict_logits
from workbench.models.memory import Budget, measure_footprint
from workbench.models.views import private_view

__all__ = ["METHODS", "Attribution", "Batching", "Method", "NoOptions", "Output", "as_clip", "attribute",
    "batched_options", "default_window", "method_label", "predicted_class", "register_method"]


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


@dataclass
class Output:
    """What a method computes: per-input-value attributions (`raw`) or its own (T, H, W) map."""

    raw: torch.Tensor | None = None  # (1, T, C, H, W)
    own_map: torch.Tensor | None = None  # (T, H, W)
    delta: float | None = None
    options: dict[str, Any] = field(default_factory=dict)  # options the method resolved (Grad-CAM's layer)


# --- options, one dataclass per method -----------------------------------------------------------------


@dataclass(frozen=True)
class NoOptions:
    """A method without settings."""


@dataclass(frozen=True)
class IntegratedGradientsOptions:
    """Integrated Gradients' settings."""

    steps: int = 32
    internal_batch_size: int | None = None  # None: as many steps per pass as the memory budget holds
    baseline: float = 0.0
    convergence_delta: bool = True  # the completeness check the maps are judged by (+2 forward passes)


@dataclass(frozen=True)
class SmoothGradOptions:
    """SmoothGrad's settings (noise std is `noise` x the clip's value range)."""

    samples: int = 8
    noise: float = 0.15
    batch: int | None = None  # samples per pass; None: as many as the memory budget holds


@dataclass(frozen=True)
class OcclusionOptions:
    """Occlusion's window (None: 1/6 of the side, stride 1/12) and batching."""

    window: int | None = None
    stride: int | None = None
    window_frames: int = 2
    stride_frames: int = 1
    baseline: float = 0.0
    perturbations_per_eval: int | None = None  # None: as many as the memory budget holds


@dataclass(frozen=True)
class TemporalAblationOptions:
    """Temporal FeatureAblation: `block` frames at a time replaced by `baseline`."""

    block: int = 1
    baseline: float = 0.0
    perturbations_per_eval: int | None = None  # None: as many frames per pass as the memory budget holds


@dataclass(frozen=True)
class GradCamOptions:
    """Grad-CAM's target layer: a feature stage's name or module path, or the module itself (None: the
    last spatial feature stage)."""

    layer: Any = None


RunFn = Callable[[nn.Module, torch.Tensor, int, Any], Output]


@dataclass(frozen=True)
class Batching:
    """How a method batches its passes: the option holding items per pass (None there: the memory
    budget decides), how many items it runs in all, and how many input-sized copies each item holds."""

    option: str
    items: Callable[[Any, torch.Tensor], int]  # (options, clip (1, T, C, H, W)) -> items in all
    inputs_per_item: float = 2.0


def _occlusion_windows(o: Any, clip: torch.Tensor) -> int:
    _, frames, _, height, width = clip.shape
    window, stride = default_window(min(height, width))
    window, stride = o.window or window, o.stride or stride
    window_frames = min(frames, o.window_frames)
    along = [(size - w) // s + 1 for size, w, s in ((frames, window_frames, o.stride_frames),
                                                     (height, window, stride), (width, window, stride))]
    return math.prod(along)


@dataclass(frozen=True)
class Method:
    """One attribution method, as the table lists it."""

    name: str
    label: str  # display name
    captum: str  # the Captum class behind it
    options: type
    run: RunFn  # (private view, inputs (1,T,C,H,W) requiring grad, target, options) -> Output
    expensive: bool = False  # many forward passes: pages show progress for it
    description: str = ""
    backward: bool = True  # its passes take gradients (memory: every saved activation per item)
    batching: Batching | None = None  # None: one pass of one clip

    def parse(self, given: Mapping[str, Any] | None = None) -> Any:
        """The method's typed options from keyword values; OptionError naming unknown ones."""
        given = dict(given or {})
        fields = [f.name for f in dataclasses.fields(self.options)]
        unknown = sorted(set(given) - set(fields))
        if unknown:
            known = ", ".join(fields) if fields else "none"
            raise OptionError(f"unknown option {unknown[0]!r} for {self.name}; its options: {known}")
        return self.options(**given)


def default_window(size: int) -> tuple[int, int]:
    """Occlusion (window, stride) in pixels for an input of `size`: 1/6 and 1/12 of the side."""
    window = max(2, round(size / 6))
    return window, max(1, window // 2)


def _resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> tuple[str, nn.Module]:
    """(name, module) of a layer option; an OptionError listing the model's feature stages otherwise."""
    if isinstance(layer, nn.Module):
        return type(layer).__name__, layer
    stage = feature_stage(model, layer)
    return stage.name, dict(model.named_modules())[stage.module]


# --- how each method runs --------------------------------------------------------------------------------


def _saliency(model: nn.Module, inputs: torch.Tensor, target: int, o: NoOptions) -> Output:
    return Output(raw=Saliency(model).attribute(inputs, target=target, abs=True))


def _integrated_gradients(
    model: nn.Module, inputs: torch.Tensor, target: int, o: IntegratedGradientsOptions
) -> Output:
    out = IntegratedGradients(model).attribute(
        inputs, baselines=o.baseline, target=target, n_steps=o.steps,
        internal_batch_size=o.internal_batch_size or o.steps, return_convergence_delta=o.convergence_delta,
    )
    if o.convergence_delta:
        return Output(raw=out[0], delta=float(out[1].abs().max()))
    return Output(raw=out)


def _smoothgrad(model: nn.Module, inputs: torch.Tensor, target: int, o: SmoothGradOptions) -> Output:
    stdev = o.noise * float(inputs.max() - inputs.min())
    raw = NoiseTunnel(Saliency(model)).attribute(
        inputs, nt_type="smoothgrad", nt_samples=o.samples, stdevs=stdev,
        nt_samples_batch_size=o.batch or o.samples, target=target, abs=True,
    )
    return Output(raw=raw)


def _input_x_gradient(model: nn.Module, inputs: torch.Tensor, target: int, o: NoOptions) -> Output:
    return Output(raw=InputXGradient(model).attribute(inputs, target=target))


def _guided_backprop(model: nn.Module, inputs: torch.Tensor, target: int, o: NoOptions) -> Output:
    return Output(raw=GuidedBackprop(model).attribute(inputs, target=target))


def _occlusion(model: nn.Module, inputs: torch.Tensor, target: int, o: OcclusionOptions) -> Output:
    clip = inputs.detach()
    _, frames, _, height, width = clip.shape
    window, stride = default_window(min(height, width))
    window, stride = o.window or window, o.stride or stride
    window_frames = min(frames, o.window_frames)
    raw = Occlusion(model).attribute(
        clip, sliding_window_shapes=(window_frames, 3, window, window),
        strides=(o.stride_frames, 3, stride, stride), baselines=o.baseline, target=target,
        perturbations_per_eval=o.perturbations_per_eval,
    )
    return Output(raw=raw)


def _temporal_ablation(
    model: nn.Module, inputs: torch.Tensor, target: int, o: TemporalAblationOptions
) -> Output:
    clip = inputs.detach()
    frames = clip.shape[1]
    block = max(1, o.block)
    mask = (torch.arange(frames, device=clip.device) // block).view(1, frames, 1, 1, 1)
    per_frame = FeatureAblation(model).attribute(
        clip, baselines=o.baseline, target=target, feature_mask=mask,
        perturbations_per_eval=o.perturbations_per_eval or frames,
    )
    # every value of a frame holds that frame's logit drop: one number per frame, spread flat
    return Output(own_map=per_frame[0, :, 0].detach())


def _gradcam(model: nn.Module, inputs: torch.Tensor, target: int, o: GradCamOptions) -> Output:
    """Grad-CAM on the layer, brought back to (T, H, W) whatever the scheme's feature layout."""
    _, frames, _, height, width = inputs.shape
    name, layer = _resolve_layer(model, o.layer)
    cam = LayerGradCam(model, layer).attribute(inputs, target=target, relu_attributions=True)
    if cam.dim() == 4:  # 2D scheme: (B*T, 1, h, w), time folded into the batch
        cam = F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)
    elif cam.dim() == 5:  # 3D scheme: (B, 1, T', h, w); T' may be shorter than T after temporal strides
        cam = F.interpolate(cam, size=(frames, height, width), mode="trilinear", align_corners=False)
    else:
        raise AnalysisError(f"layer {name!r} gives an output of shape {tuple(cam.shape)}, not a feature map")
    return Output(own_map=cam.reshape(frames, height, width).detach(), options={"layer": name})


# --- the table -----------------------------------------------------------------------------------------

METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add (or replace) a row; pages and tables list methods in table order."""
    METHODS[method.name] = method
    return method


for _row in (
    Method("saliency", "Saliency", "Saliency", NoOptions, _saliency,
           description="|gradient| of the class score"),
    Method("integrated_gradients", "Integrated Gradients", "IntegratedGradients", IntegratedGradientsOptions,
           _integrated_gradients, expensive=True, description="gradients along a path from the baseline",
           batching=Batching("internal_batch_size", lambda o, clip: o.steps, 3.0)),
    Method("smoothgrad", "SmoothGrad", "NoiseTunnel(Saliency)", SmoothGradOptions, _smoothgrad,
           expensive=True, description="saliency averaged over noisy copies",
           batching=Batching("batch", lambda o, clip: o.samples, 3.0)),
    Method("input_x_gradient", "Input × Gradient", "InputXGradient", NoOptions, _input_x_gradient,
           description="input times gradient"),
    Method("guided_backprop", "Guided Backprop", "GuidedBackprop", NoOptions, _guided_backprop,
           description="gradients with negative ReLU gradients dropped"),
    Method("occlusion", "Occlusion", "Occlusion", OcclusionOptions, _occlusion, expensive=True,
           description="score drop when a space-time patch is hidden", backward=False,
           batching=Batching("perturbations_per_eval", _occlusion_windows)),
    Method("temporal_ablation", "Temporal ablation", "FeatureAblation", TemporalAblationOptions,
           _temporal_ablation, description="score change when a frame is replaced by the baseline",
           backward=False, batching=Batching("perturbations_per_eval",
                                             lambda o, clip: -(-clip.shape[1] // max(1, o.block)))),
    Method("gradcam", "Grad-CAM", "LayerGradCam", GradCamOptions, _gradcam,
           description="last stage's features weighted by their gradients"),
):
    register_method(_row)


def method_label(name: str) -> str:
    """Display name of a method (its name when it is not in the table)."""
    row = METHODS.get(name)
    return row.label if row is not None else name


# --- attribute -------------------------------------------------------------------------------------------


def batched_options(row: Method, options: Any, model: nn.Module, clip: torch.Tensor,
                    memory: Budget | int | str | None) -> Any:
    """The options with the items per pass the budget holds filled in (where the user left them
    open); MemoryBudgetError when one clip of the method does not fit."""
    budget = Budget.of(memory)
    footprint = measure_footprint(model, tuple(clip.shape[-4:]))
    batching = row.batching
    if batching is None or getattr(options, batching.option) is not None:
        budget.batch(footprint, row.backward, 1, what=row.label)
        return options
    fit = budget.batch(footprint, row.backward, batching.items(options, clip),
                       inputs_per_item=batching.inputs_per_item, what=row.label)
    return dataclasses.replace(options, **{batching.option: fit})


def as_clip(clip: torch.Tensor) -> torch.Tensor:
    """A single clip as (1, T, C, H, W) float32."""
    if clip.dim() == 4:
        clip = clip.unsqueeze(0)
    if clip.dim() != 5 or clip.shape[0] != 1:
        raise ValueError(f"expected one clip (1, T, C, H, W) or (T, C, H, W), got {tuple(clip.shape)}")
    return clip.float()


def predicted_class(model: nn.Module, clip: torch.Tensor) -> int:
    """The class the model predicts for the clip."""
    return int(predict_logits(model, as_clip(clip)).argmax(dim=1).item())


def attribute(
    model: nn.Module,
    clip: torch.Tensor,
    method: str,
    target: int | None = None,
    *,
    memory: Budget | int | str | None = None,
    **opts: Any,
) -> Attribution:
    """Attribute `target` (default: the predicted class) of one clip with `method` (see METHODS);
    `opts` are the method's options (an unknown one is an OptionError). Items per pass that the options
    leave open follow from the model's footprint and the `memory` budget (workbench.models.memory); a
    method that does not fit at batch 1 is refused before it runs (MemoryBudgetError)."""
    if method not in METHODS:
        raise OptionError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)}")
    row = METHODS[method]
    options = batched_options(row, row.parse(opts), model, as_clip(clip), memory)
    view = private_view(model)  # eval mode: BatchNorm in train mode makes maps depend on the batch
    # under the opt-in kept blocks each pass hands them back: they pile up pass after pass otherwise
    view.register_forward_hook(lambda *_: release_after_pass())
    clip = as_clip(clip).detach().to(model_device(view))  # the model may live on a GPU
    if target is None:
        target = predicted_class(view, clip)
    start = time.perf_counter()
    out = row.run(view, clip.clone().requires_grad_(True), int(target), options)
    seconds = time.perf_counter() - start
    if out.raw is not None:
        raw_np = out.raw.detach()[0].float().cpu().numpy()
        signed = raw_np.sum(axis=1)
        importance = np.abs(raw_np).sum(axis=1)
    elif out.own_map is not None:
        raw_np = None
        signed = out.own_map.float().cpu().numpy()
        # Grad-CAM is ReLU'd already; a frame whose removal raises the score matters as much as one
        # whose removal lowers it, so ablation importance is the size of the change
        importance = np.abs(signed)
    else:
        raise ValueError(f"attribution method {method!r} returned neither values nor a map")
    used = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else type(v).__name__)
            for k, v in dataclasses.asdict(options).items()}
    used.update(out.options)
    return Attribution(
        method=method, target=int(target), map=importance.astype(np.float32),
        signed_map=signed.astype(np.float32), raw=None if raw_np is None else raw_np.astype(np.float32),
        options=used, delta=out.delta, seconds=seconds,
    )
