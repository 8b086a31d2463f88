"""Video decoding (decord), frame sampling and preprocessing by ModelSpec.

Data flow: file/upload -> `read_frames` (uint8 T,H,W,3 RGB) -> `preprocess` (float T,3,S,S).
`load_clip` does both for one model input (1,T,3,S,S); `load_clips` for several models' inputs at once.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import decord
import numpy as np
import torch
from decord._ffi.base import DECORDError, DECORDLimitReachedError
from PIL import Image
from torch.nn import functional

from workbench.errors import VideoError
from workbench.models.spec import ModelSpec

# A video path, a frame-folder path, raw bytes or a binary file-like object (BytesIO, UploadedFile).
VideoSource = str | os.PathLike | bytes | IO[bytes]

VIDEO_EXTENSIONS = frozenset(".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .wmv .flv .3gp .ogv".split())
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
SAMPLING_MODES = ("segment", "dense")

# decord signals bad input with RuntimeError, DECORDError (not a RuntimeError: truncated faststart
# mp4), IndexError (frame count larger than the decodable frames) or a failed assert (0 frames).
_DECODE_ERRORS = (RuntimeError, DECORDError, DECORDLimitReachedError, IndexError, AssertionError)
_FRAME_NUMBER = re.compile(r"^(.*?)(\d+)$")


@dataclass
class _Source:
    """A resolved input: a video file, an in-memory video, or a folder of frame images."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    frame_paths: list[Path] = field(default_factory=list)

    @property
    def is_folder(self) -> bool:
        return bool(self.frame_paths)


def _error(name: str, problem: str) -> VideoError:
    return VideoError(f"cannot decode {name!r}: {problem}")


def _frame_files(folder: Path) -> list[Path]:
    """Images of a frame folder in numeric order (`img_00001.jpg`, `00001.jpg`, ...)."""
    series: dict[str, list[tuple[int, Path]]] = {}
    for path in folder.iterdir():
        match = _FRAME_NUMBER.match(path.stem)
        if path.suffix.lower() in IMAGE_EXTENSIONS and match and not path.name.startswith("."):
            series.setdefault(match.group(1), []).append((int(match.group(2)), path))
    if not series:
        raise _error(str(folder), "folder has no numbered image frames")
    if len(series) > 1:
        # TSN-style folders can hold img_*, flow_x_* and flow_y_* side by side: RGB is img_*.
        if "img_" not in series:
            raise _error(str(folder), f"folder mixes frame series {sorted(series)}")
        series = {"img_": series["img_"]}
    (numbered,) = series.values()
    return [path for _, path in sorted(numbered)]


def _source(video: VideoSource) -> _Source:
    """Resolve the input and reject missing or empty files before decord sees them."""
    if isinstance(video, (bytes, bytearray)):
        if not video:
            raise _error("<bytes>", "file is empty")
        return _Source(name="<bytes>", data=bytes(video))
    if hasattr(video, "read"):
        name = str(getattr(video, "name", None) or "<in-memory video>")
        if hasattr(video, "seek"):
            video.seek(0)  # decord reads from the current position
        data = video.read()
        if not data:
            raise _error(name, "file is empty")
        return _Source(name=name, data=bytes(data))
    if not isinstance(video, (str, os.PathLike)):
        raise TypeError(f"expected a path, bytes or a binary file object, not {type(video).__name__}")
    path = Path(video)
    name = str(video)
    if path.is_dir():
        return _Source(name=name, path=path, frame_paths=_frame_files(path))
    if not path.exists():
        raise _error(name, "no such file")
    if path.stat().st_size == 0:
        raise _error(name, "file is empty")
    return _Source(name=name, path=path)


@contextmanager
def _decoding(name: str) -> Iterator[None]:
    """Turn decord's assorted failures into one VideoError naming the file."""
    try:
        yield
    except _DECODE_ERRORS as exc:
        raise _error(name, "not a video or corrupt") from exc


def _reader(source: _Source, height: int = -1, width: int = -1) -> decord.VideoReader:
    """A decord reader, scaled to (height, width) by ffmpeg when both are given."""
    uri: Any = io.BytesIO(source.data) if source.data is not None else str(source.path)
    with _decoding(source.name):
        return decord.VideoReader(uri, width=width, height=height)


def _fit(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) shrunk so the long side is at most `max_side`, aspect ratio kept."""
    if max_side is None or max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass
class _Opened:
    """A source with its frame count, size and (for files) an open full-size reader."""

    source: _Source
    num_frames: int
    height: int
    width: int
    fps: float | None
    reader: decord.VideoReader | None = None


def _open(video: VideoSource) -> _Opened:
    source = _source(video)
    if source.is_folder:
        first = source.frame_paths[0]
        try:
            with Image.open(first) as image:  # reads the header only
                width, height = image.size
        except (OSError, ValueError) as exc:
            raise _error(source.name, f"frame {first.name!r} is not an image") from exc
        return _Opened(source, len(source.frame_paths), height, width, fps=None)
    reader = _reader(source)
    with _decoding(source.name):
        num_frames = len(reader)
        fps = float(reader.get_avg_fps())
        # decord has no size query: decode frame 0 once (a 4K frame is ~25 MB, ~0.07 s).
        height, width = reader.next().shape[:2]
    return _Opened(source, num_frames, int(height), int(width), fps, reader)


def _check_indices(opened: _Opened, indices: Sequence[int] | np.ndarray | torch.Tensor | None) -> list[int]:
    if indices is None:
        return list(range(opened.num_frames))
    flat = np.asarray(indices, dtype=np.int64).reshape(-1)
    bad = flat[(flat < 0) | (flat >= opened.num_frames)]
    if bad.size:
        raise IndexError(
            f"frame index {int(bad[0])} out of range for {opened.source.name!r} ({opened.num_frames} frames)"
        )
    return flat.tolist()


def _decode(opened: _Opened, indices: list[int], max_side: int | None) -> torch.Tensor:
    """Decode `indices` (uint8 T,H,W,3 RGB), at reduced size if larger than `max_side`."""
    height, width = _fit(opened.height, opened.width, max_side)
    if not indices:
        return torch.empty((0, height, width, 3), dtype=torch.uint8)
    source = opened.source
    if source.is_folder:
        return torch.from_numpy(np.stack([_read_image(source, index, height, width) for index in indices]))
    reader = opened.reader
    if reader is None or (height, width) != (opened.height, opened.width):
        # Free the full-size decoder first: alive, it doubles the peak memory (4K: +300 MB).
        opened.reader = reader = None
        reader = _reader(source, height=height, width=width)
    with _decoding(source.name), decord.bridge.use_torch():
        try:
            frames = reader.get_batch(indices)
        except DECORDError:
            first = reader[indices[0]]
            if first.shape[-1] == 3:
                raise  # a real decoding failure
            frames = torch.stack([_unpad(reader[index], height, width) for index in indices])
    return frames.contiguous()


def _unpad(frame: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Undo a decord bug: at some narrow widths (16, 24, 48, 72 px ...) ffmpeg pads each RGB row
    and decord reports the padded row as extra channels, e.g. (48, 48, 4); `get_batch` then fails.
    Single frames keep the padded rows: drop the padding."""
    rows = frame.reshape(height, -1)
    if rows.shape[1] < 3 * width:
        raise DECORDError(f"decoded frame {tuple(frame.shape)} is smaller than {height}x{width} RGB")
    return rows[:, : 3 * width].reshape(height, width, 3)


def _read_image(source: _Source, index: int, height: int, width: int) -> np.ndarray:
    """One frame of a frame folder as uint8 (H,W,3) RGB, resized to (height, width) if needed."""
    path = source.frame_paths[index]
    try:
        with Image.open(path) as image:
            if image.size != (width, height):
                image.draft("RGB", (width, height))  # JPEG: decode at a reduced scale
                image = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise _error(source.name, f"frame {path.name!r} is not a readable image") from exc


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
) -> torch.Tensor:
    """Decode frames (all, or `indices`) as uint8 (T,H,W,3) RGB, long side at most `max_side`."""
    opened = _open(video)
    return _decode(opened, _check_indices(opened, indices), max_side)


def video_info(video: VideoSource) -> dict[str, Any]:
    """Frame count, size and fps (None for a frame folder) of a video."""
    opened = _open(video)
    return {
        "num_frames": opened.num_frames,
        "height": opened.height,
        "width": opened.width,
        "fps": opened.fps,
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
            f"{opened.source.name!r} has {opened.num_frames} frames, fewer than the {frames} "
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
) -> torch.Tensor:
    """One model input (1, spec.frames, 3, S, S): sample, decode only those frames, preprocess."""
    opened = _open(video)
    _warn_if_short(opened, spec.frames)
    indices = sample_indices(opened.num_frames, spec.frames, mode=mode, train=train, rng=rng)
    frames = _decode(opened, indices.tolist(), _decode_side(opened, spec))
    return preprocess(frames, spec).unsqueeze(0)


def load_clips(video: VideoSource, specs: Sequence[ModelSpec]) -> list[torch.Tensor]:
    """The test-time clip (spec.frames, 3, S, S) of each spec, as `load_clip` gives it, opening the
    video once and decoding the frames the specs share once (once per decode size the specs need)."""
    opened = _open(video)
    _warn_if_short(opened, max(spec.frames for spec in specs))
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
