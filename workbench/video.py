"""Video decoding (decord or PyAV), frame sampling and preprocessing by ModelSpec.

Data flow: file/upload -> `read_frames` (uint8 T,H,W,3 RGB, upright) -> `preprocess` (float T,3,S,S).
`load_clip` does both for one model input (1,T,3,S,S); `load_clips` for several models' inputs at once.
The back ends live in `workbench.decode`; `set_decoder` / $WORKBENCH_DECODER choose one (auto: decord
where installed, else PyAV). A bad input raises VideoError naming it; a video used only in part warns
(VideoWarning) how much was read.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.nn import functional

from workbench.decode import limits
from workbench.decode.choice import (
    DECODERS,
    ENV_VAR,
    available_decoders,
    get_decoder,
    resolve_decoder,
    set_decoder,
    using_decoder,
)
from workbench.decode.errors import BackendFailed, PartialDecode, VideoError, VideoWarning, cannot_decode
from workbench.decode.frame_folder import IMAGE_EXTENSIONS, FrameFolder
from workbench.decode.pyav_decoder import PyAVVideo
from workbench.decode.sources import VideoSource, resolve
from workbench.models.spec import ModelSpec

__all__ = [
    "DECODERS", "ENV_VAR", "IMAGE_EXTENSIONS", "SAMPLING_MODES", "VIDEO_EXTENSIONS", "VideoError",
    "VideoSource", "VideoWarning", "available_decoders", "get_decoder", "load_clip", "load_clips",
    "decode_side", "preprocess", "read_frames", "sample_indices", "set_decoder", "using_decoder",
    "video_info",
]  # fmt: skip

VIDEO_EXTENSIONS = frozenset(".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .wmv .flv .3gp .ogv".split())
SAMPLING_MODES = ("segment", "dense")


class _Opened(Protocol):
    """An opened video or frame folder, whichever back end holds it."""

    name: str
    decoder: str
    num_frames: int
    header_frames: int
    height: int
    width: int
    fps: float | None
    rotation: int
    mirrored: bool
    notes: list[str]  # the VideoWarnings opening it gave

    def decode(self, indices: list[int], height: int, width: int) -> np.ndarray: ...

    def close(self) -> None: ...


class _WithFallback:
    """decord decoding a probed video, PyAV taking over a file decord cannot read (cut, damaged)."""

    def __init__(self, primary: _Opened, fallback: PyAVVideo) -> None:
        self.primary, self.fallback = primary, fallback
        for key in ("name", "num_frames", "header_frames", "height", "width", "fps", "rotation", "mirrored"):
            setattr(self, key, getattr(fallback, key))
        self.decoder = primary.decoder

    def decode(self, indices: list[int], height: int, width: int) -> np.ndarray:
        try:
            return self.primary.decode(indices, height, width)
        except BackendFailed:
            self.decoder = self.fallback.decoder
            return self.fallback.decode(indices, height, width)

    def close(self) -> None:
        self.fallback.close()


def _open(video: VideoSource, decoder: str | None = None) -> _Opened:
    """Resolve, bound and probe the input, and pick the back end that decodes it."""
    name = resolve_decoder(decoder)
    source = resolve(video)
    if source.is_folder:
        return FrameFolder(source)
    probe = PyAVVideo(source)
    notes = []  # what is warned, kept for video_info: a caller may show it without catching warnings
    if probe.header_frames > probe.num_frames:
        notes.append(f"{probe.name!r}: {probe.num_frames} of the {probe.header_frames} frames its header "
                     "lists can be decoded (a cut or damaged file): using those")
        warnings.warn(notes[-1], VideoWarning, stacklevel=3)
    opened: _Opened = probe
    if name == "decord":
        # imported only where decord is chosen
        from workbench.decode.decord_decoder import DecordVideo, decord_is_exact

        # elsewhere (open GOPs, some containers, mirrored videos) decord returns other frames: PyAV decodes
        if decord_is_exact(probe):
            probe.close()  # its decoder threads are not needed while decord decodes; a fallback reopens it
            opened = _WithFallback(DecordVideo(probe), probe)
    opened.notes = notes
    return opened


def _fit(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) shrunk so the long side is at most `max_side`, aspect ratio kept."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _check_indices(opened: _Opened, indices: Sequence[int] | np.ndarray | torch.Tensor | None) -> list[int]:
    if indices is None:
        return list(range(opened.num_frames))
    flat = np.asarray(indices, dtype=np.int64).reshape(-1)
    bad = flat[(flat < 0) | (flat >= opened.num_frames)]
    if bad.size:
        raise IndexError(
            f"frame index {int(bad[0])} out of range for {opened.name!r} ({opened.num_frames} frames)"
        )
    return flat.tolist()


def _decode(opened: _Opened, indices: list[int], max_side: int | None) -> torch.Tensor:
    """Decode `indices` (uint8 T,H,W,3 RGB), at reduced size if larger than `max_side`; each distinct
    frame once. Raises PartialDecode when a wanted frame does not decode."""
    height, width = _fit(opened.height, opened.width, max_side)
    if not indices:
        return torch.empty((0, height, width, 3), dtype=torch.uint8)
    unique = sorted(set(indices))
    limits.check_decode_bytes(opened.name, len(unique), height, width)
    frames = torch.from_numpy(np.ascontiguousarray(opened.decode(unique, height, width)))
    if unique == indices:
        return frames
    slots = torch.as_tensor(np.searchsorted(np.asarray(unique), np.asarray(indices)))
    return frames[slots].contiguous()


def _warn_partial(opened: _Opened, readable: int) -> None:
    """A video decodes only in part: say how much, or refuse it when nothing decodes."""
    if readable == 0:
        raise cannot_decode(opened.name, "no frame decodes (not a video or corrupt)")
    warnings.warn(
        f"{opened.name!r}: only the first {readable} of {opened.num_frames} frames decode (a cut or damaged "
        f"file): using those",
        VideoWarning,
        stacklevel=3,
    )
    opened.num_frames = readable


def sample_indices(
    num_frames: int,
    frames: int,
    mode: str = "segment",
    train: bool = False,
    rng: np.random.Generator | None = None,
    dense_stride: int = 2,
) -> np.ndarray:
    """Frame indices for a clip of `frames` from a video of `num_frames` (TSN segment or dense)."""
    if num_frames < 1 or frames < 1 or dense_stride < 1:
        raise ValueError(
            f"num_frames, frames, dense_stride must be >= 1: {num_frames}, {frames}, {dense_stride}"
        )
    if mode not in SAMPLING_MODES:
        raise ValueError(f"mode must be one of {SAMPLING_MODES}, not {mode!r}")
    rng = rng if rng is not None else np.random.default_rng()
    if mode == "dense":
        span = (frames - 1) * dense_stride + 1
        room = max(0, num_frames - span)
        start = int(rng.integers(0, room + 1)) if train else room // 2
        # Too short a video repeats its last frame rather than wrapping: frame order stays intact.
        return np.minimum(start + dense_stride * np.arange(frames), num_frames - 1).astype(np.int64)
    if not train:
        # The TSN/TSM/GSM test sampler: the centre of each of `frames` equal segments.
        tick = num_frames / frames
        return np.array([int(tick / 2 + tick * i) for i in range(frames)], dtype=np.int64)
    # One random frame in each segment [floor(i*tick), floor((i+1)*tick)): the segments partition
    # the video; a video shorter than `frames` has one-frame segments, so frames repeat.
    edges = np.floor(np.arange(frames + 1) * (num_frames / frames)).astype(np.int64)
    low = edges[:-1]
    high = np.maximum(low + 1, edges[1:])
    return rng.integers(low, high).astype(np.int64)


def read_frames(
    video: VideoSource,
    indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    max_side: int | None = None,
    *,
    decoder: str | None = None,
) -> torch.Tensor:
    """Decode frames (all, or `indices`) as upright uint8 (T,H,W,3) RGB, long side at most `max_side`.
    All frames of a video that decodes only in part: the frames that decode, with a VideoWarning."""
    opened = _open(video, decoder)
    try:
        wanted = _check_indices(opened, indices)
        try:
            return _decode(opened, wanted, max_side)
        except PartialDecode as partial:
            if indices is not None:
                raise cannot_decode(opened.name, f"frame {partial.readable} and later do not decode (only "
                                                 f"{partial.readable} of {opened.num_frames})") from None
            _warn_partial(opened, partial.readable)
            return _decode(opened, list(range(partial.readable)), max_side)
    finally:
        opened.close()


def video_info(video: VideoSource, *, decoder: str | None = None) -> dict[str, Any]:
    """Frame count, upright size, fps (None for a frame folder or when unknown), the display rotation
    applied (degrees counter-clockwise; `mirrored`: flipped left-right before it), the back end
    ("decord", "pyav" or "frames") and the VideoWarnings opening it gave (`warnings`)."""
    opened = _open(video, decoder)
    opened.close()
    return {
        "warnings": list(opened.notes),  # what was warned (VideoWarning) on opening it
        "num_frames": opened.num_frames,
        "height": opened.height,
        "width": opened.width,
        "fps": opened.fps,
        "rotation": opened.rotation,
        "mirrored": opened.mirrored,
        "decoder": opened.decoder,
    }


def preprocess(frames: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """uint8 (T,H,W,3) RGB -> float32 (T,3,S,S): resize, crop, channel order, scale, normalise."""
    if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T,H,W,3), got {frames.dtype} {tuple(frames.shape)}")
    size, short = spec.input_size, spec.resize_to
    if short < size:
        raise ValueError(f"spec resizes to {short}, smaller than its {size} crop")
    clip = frames.permute(0, 3, 1, 2).float()
    height, width = clip.shape[-2:]
    # Output size and crop offsets as torchvision Resize(int) + CenterCrop (the official loaders).
    if height <= width:
        new_height, new_width = short, int(short * width / height)
    else:
        new_height, new_width = int(short * height / width), short
    if (new_height, new_width) != (height, width):
        size_hw = (new_height, new_width)
        clip = functional.interpolate(clip, size_hw, mode="bilinear", align_corners=False, antialias=True)
    top, left = round((new_height - size) / 2.0), round((new_width - size) / 2.0)
    clip = clip[:, :, top : top + size, left : left + size]
    if spec.channel_order == "BGR":
        clip = clip.flip(1)
    clip = clip * (spec.value_scale / 255.0)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((clip - mean) / std).contiguous()


def _warn_if_short(opened: _Opened, frames: int) -> None:
    if opened.num_frames < frames:
        warnings.warn(
            f"{opened.name!r} has {opened.num_frames} frames, fewer than the {frames} "
            f"the model takes: frames are repeated",
            stacklevel=3,
        )


def decode_side(height: int, width: int, spec: ModelSpec) -> int:
    """The long side to decode a (height, width) video at for `spec`: the short side ~2x the resize
    target, cheap to decode yet resized like a full frame."""
    short, long = min(height, width), max(height, width)
    return math.ceil(2 * spec.resize_to * long / short)


def _decode_side(opened: _Opened, spec: ModelSpec) -> int:
    return decode_side(opened.height, opened.width, spec)


def load_clip(
    video: VideoSource,
    spec: ModelSpec,
    *,
    train: bool = False,
    rng: np.random.Generator | None = None,
    mode: str = "segment",
    decoder: str | None = None,
) -> torch.Tensor:
    """One model input (1, spec.frames, 3, S, S): sample, decode only those frames, preprocess.
    A video that decodes only in part is sampled from the frames that decode (VideoWarning)."""
    opened = _open(video, decoder)
    try:
        _warn_if_short(opened, spec.frames)
        # one draw of the rng per attempt: a retry after a partial decode samples the shorter video
        while True:
            indices = sample_indices(opened.num_frames, spec.frames, mode=mode, train=train, rng=rng)
            try:
                frames = _decode(opened, indices.tolist(), _decode_side(opened, spec))
                break
            except PartialDecode as partial:
                _warn_partial(opened, partial.readable)
        return preprocess(frames, spec).unsqueeze(0)
    finally:
        opened.close()


def load_clips(
    video: VideoSource, specs: Sequence[ModelSpec], *, decoder: str | None = None
) -> list[torch.Tensor]:
    """The test-time clip (spec.frames, 3, S, S) of each spec, as `load_clip` gives it, opening the
    video once and decoding the frames the specs share once (once per decode size the specs need)."""
    opened = _open(video, decoder)
    try:
        _warn_if_short(opened, max(spec.frames for spec in specs))
        while True:
            try:
                return _clips_of(opened, specs)
            except PartialDecode as partial:
                _warn_partial(opened, partial.readable)
    finally:
        opened.close()


def _clips_of(opened: _Opened, specs: Sequence[ModelSpec]) -> list[torch.Tensor]:
    picks = [sample_indices(opened.num_frames, spec.frames) for spec in specs]
    sides = [_decode_side(opened, spec) for spec in specs]
    clips: list[torch.Tensor | None] = [None] * len(specs)
    for side in dict.fromkeys(sides):
        members = [i for i, s in enumerate(sides) if s == side]
        wanted = np.unique(np.concatenate([picks[i] for i in members]))
        frames = _decode(opened, wanted.tolist(), side)
        for i in members:
            clips[i] = preprocess(frames[torch.from_numpy(np.searchsorted(wanted, picks[i]))], specs[i])
    return clips  # type: ignore[return-value]
