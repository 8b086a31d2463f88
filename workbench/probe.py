"""Synthetic temporal-probe dataset: procedurally rendered clips whose class depends on frame order.

Ten temporal classes come in five mirror pairs (A, B). A clip of B is rendered by drawing every
parameter exactly as for A and reversing the frame order, so the two classes have identical
distributions of single frames and of unordered frame sets: only the order tells them apart.
Four static classes are defined by the object's shape alone; their objects wander randomly
and use colours and shapes that no temporal class uses.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 8  # frame rate written into the mp4 files (the probe has no real time base)

# Object colours (RGB). The palettes are disjoint in hue so that one frame of a temporal object
# is never confusable with a static object; distractors are achromatic grey blobs.
TEMPORAL_PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 30, 30),  # red
    (30, 200, 40),  # green
    (40, 60, 230),  # blue
    (240, 220, 20),  # yellow
)
STATIC_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 220, 220),  # cyan
    (230, 0, 230),  # magenta
    (255, 150, 200),  # pink
    (245, 245, 245),  # white
)

# Shapes live in object coordinates (u, v) inside the unit disc (u right, v down at angle 0).
TEMPORAL_SHAPES = ("square", "disc", "ell", "half_disc", "pacman")
ROTATION_SHAPES = ("ell", "half_disc", "pacman")  # no rotational symmetry
STATIC_SHAPES = ("cross", "ring", "triangle", "bar")


@dataclass(frozen=True)
class ProbeClass:
    """One probe class: its name, kind ("temporal" | "static") and temporal mirror class."""

    name: str
    kind: str  # "temporal" | "static"
    mirror_of: str | None


_MIRROR_PAIRS = (
    ("move_left", "move_right"),
    ("move_up", "move_down"),
    ("rotate_cw", "rotate_ccw"),
    ("grow", "shrink"),
    ("fade_in", "fade_out"),
)
_STATIC_CLASS_SHAPES = {
    "static_cross": "cross",
    "static_ring": "ring",
    "static_triangle": "triangle",
    "static_bar": "bar",
}

PROBE_CLASSES: tuple[ProbeClass, ...] = tuple(
    [
        ProbeClass(name, "temporal", mirror)
        for first, second in _MIRROR_PAIRS
        for name, mirror in ((first, second), (second, first))
    ]
    + [ProbeClass(name, "static", None) for name in _STATIC_CLASS_SHAPES]
)

# Temporal class -> (motion rendered forwards, whether the frames are then reversed).
_MOTION_OF: dict[str, tuple[str, bool]] = {
    name: (first, reverse)
    for first, second in _MIRROR_PAIRS
    for name, reverse in ((first, False), (second, True))
}


def class_names() -> list[str]:
    """Probe class names in label order."""
    return [c.name for c in PROBE_CLASSES]


def mirror_table() -> dict[str, str | None]:
    """Temporal mirror class of each class (None for static classes)."""
    return {c.name: c.mirror_of for c in PROBE_CLASSES}


def class_kinds() -> dict[str, str]:
    """Kind ("temporal" | "static") of each class."""
    return {c.name: c.kind for c in PROBE_CLASSES}


def clip_rng(seed: int, class_name: str, index: int) -> np.random.Generator:
    """The generator that renders clip `index` of `class_name` in a dataset written with `seed`."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    names = class_names()
    if class_name not in names:
        raise ValueError(f"unknown probe class {class_name!r}; known: {names}")
    return np.random.default_rng([seed, names.index(class_name), index])


def clip_id(class_name: str, index: int) -> str:
    """Dataset-wide unique id of clip `index` of `class_name`."""
    return f"{class_name}_{index:05d}"


# --------------------------------------------------------------------------------------------
# Rendering


@dataclass
class _Track:
    """Per-frame object pose: centre (pixels), angle (radians), scale and opacity, each (T,)."""

    cx: np.ndarray
    cy: np.ndarray
    angle: np.ndarray
    scale: np.ndarray
    alpha: np.ndarray


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean occupancy of `shape` at object coordinates (u, v); every shape fits the unit disc."""
    r2 = u * u + v * v
    au, av = np.abs(u), np.abs(v)
    if shape == "square":
        return (au <= 0.7) & (av <= 0.7)
    if shape == "disc":
        return r2 <= 0.81
    if shape == "ell":  # square with the top-right block cut out: a vertical and a bottom arm
        return (au <= 0.7) & (av <= 0.7) & ~((u > -0.15) & (v < 0.15))
    if shape == "half_disc":  # flat edge at v = -0.3, arc below
        w = v + 0.3
        return (u * u + w * w <= 0.81) & (w >= 0)
    if shape == "pacman":  # disc with a 75-degree wedge cut out on the +u side
        return (r2 <= 0.81) & ~((u > 0) & (av < 0.75 * u))
    if shape == "cross":
        return ((au <= 0.25) & (av <= 0.85)) | ((av <= 0.25) & (au <= 0.85))
    if shape == "ring":
        return (r2 >= 0.25) & (r2 <= 0.81)
    if shape == "triangle":  # apex at (0, -0.85), base at v = 0.55
        return (v <= 0.55) & (au <= 0.8 * (v + 0.85) / 1.4)
    if shape == "bar":
        return (au <= 0.9) & (av <= 0.22)
    raise ValueError(f"unknown shape {shape!r}")


def _ramp(start: float, end: float, frames: int) -> np.ndarray:
    """Linear ramp from `start` to `end` over `frames` frames."""
    return np.linspace(start, end, frames, dtype=np.float64)


def _drift(rng: np.random.Generator, lo: float, hi: float, size: int, frames: int) -> np.ndarray:
    """Slow linear drift of one coordinate between random points inside [lo, hi]."""
    start = rng.uniform(lo, hi)
    end = float(np.clip(start + rng.uniform(-0.08, 0.08) * size, lo, hi))
    return _ramp(start, end, frames)


def _temporal_track(
    motion: str, rng: np.random.Generator, frames: int, size: int
) -> tuple[str, float, _Track]:
    """Shape, radius (pixels) and per-frame pose of the forward motion of a mirror pair."""
    shapes = ROTATION_SHAPES if motion == "rotate_cw" else TEMPORAL_SHAPES
    shape = str(shapes[rng.integers(len(shapes))])
    radius = rng.uniform(0.16, 0.22) if motion == "grow" else rng.uniform(0.13, 0.19)
    radius *= size
    angle0 = rng.uniform(0.0, 2 * np.pi)
    lo, hi = radius + 1.0, size - radius - 1.0  # keep the whole object inside the frame
    ones = np.ones(frames)
    angle, scale, alpha = angle0 * ones, ones.copy(), ones.copy()
    if motion in ("move_left", "move_up"):
        distance = rng.uniform(0.55, 1.0) * (hi - lo)
        start = rng.uniform(lo + distance, hi)
        along = _ramp(start, start - distance, frames)
        across_start = rng.uniform(lo, hi)
        across_end = float(np.clip(across_start + rng.uniform(-0.15, 0.15) * distance, lo, hi))
        across = _ramp(across_start, across_end, frames)
        cx, cy = (along, across) if motion == "move_left" else (across, along)
    else:
        cx, cy = _drift(rng, lo, hi, size, frames), _drift(rng, lo, hi, size, frames)
        if motion == "rotate_cw":  # angle grows: +u turns towards +v (down), clockwise on screen
            angle = angle0 + _ramp(0.0, np.deg2rad(rng.uniform(120.0, 200.0)), frames)
        elif motion == "grow":
            scale = _ramp(rng.uniform(0.36, 0.44), rng.uniform(0.95, 1.0), frames)
        elif motion == "fade_in":
            alpha = _ramp(0.15, 1.0, frames)
        else:
            raise ValueError(f"unknown motion {motion!r}")
    return shape, radius, _Track(cx, cy, angle, scale, alpha)


def _static_track(
    shape: str, rng: np.random.Generator, frames: int, size: int
) -> tuple[str, float, _Track]:
    """Shape, radius and pose of a static-class object: fixed look, random-walk position."""
    radius = rng.uniform(0.14, 0.2) * size
    angle0 = rng.uniform(0.0, 2 * np.pi)
    lo, hi = radius + 1.0, size - radius - 1.0
    start = rng.uniform(lo, hi, size=2)
    steps = rng.normal(0.0, 0.03 * size, size=(frames - 1, 2))
    walk = np.clip(start + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)]), lo, hi)
    ones = np.ones(frames)
    return shape, radius, _Track(walk[:, 0], walk[:, 1], angle0 * ones, ones, ones.copy())


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Unit-variance noise on a coarse `cells` x `cells` grid, bilinearly upsampled to size x size."""
    coarse = rng.normal(size=(cells, cells))
    positions = (np.arange(size) + 0.5) * (cells - 1) / size
    interp = np.stack([np.interp(positions, np.arange(cells), col) for col in np.eye(cells)], 1)
    return interp @ coarse @ interp.T


def _background(rng: np.random.Generator, size: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Low-contrast static background: tinted grey, gradient, smooth noise, fine grain. (S, S, 3)."""
    base = rng.uniform(45.0, 115.0)
    tint = rng.uniform(-12.0, 12.0, size=3)
    direction = rng.uniform(0.0, 2 * np.pi)
    gradient = rng.uniform(0.0, 30.0) * (
        ((xs * np.cos(direction) + ys * np.sin(direction)) / size) - 0.5
    )
    smooth = rng.uniform(3.0, 9.0) * _smooth_noise(rng, size, int(rng.integers(3, 7)))
    grain = rng.normal(0.0, 2.0, size=(size, size))
    luminance = base + gradient + smooth + grain
    return luminance[:, :, None] + tint


def _composite_distractors(
    image: np.ndarray, rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray
) -> None:
    """Blend 1-2 soft grey blobs that jitter randomly into `image` (T, S, S, 3), in place."""
    frames, size = image.shape[0], image.shape[1]
    for _ in range(int(rng.integers(1, 3))):
        sigma = rng.uniform(0.04, 0.075) * size
        level = rng.uniform(150.0, 205.0)
        start = rng.uniform(0.1 * size, 0.9 * size, size=2)
        steps = rng.normal(0.0, 0.025 * size, size=(frames - 1, 2))
        path = np.clip(
            start + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)]), 0.0, size
        )
        d2 = (xs - path[:, 0, None, None]) ** 2 + (ys - path[:, 1, None, None]) ** 2
        weight = (0.85 * np.exp(-d2 / (2 * sigma * sigma)))[..., None]
        image *= 1.0 - weight
        image += weight * level


def _composite_object(
    image: np.ndarray,
    rng: np.random.Generator,
    shape: str,
    radius: float,
    track: _Track,
    palette: tuple[tuple[int, int, int], ...],
    xs: np.ndarray,
    ys: np.ndarray,
) -> np.ndarray:
    """Blend the textured probe object into `image` in place; return its mask (T, S, S)."""
    colour = np.asarray(palette[rng.integers(len(palette))], dtype=np.float64)
    stripe_dir = rng.uniform(0.0, 2 * np.pi)
    stripe_freq = rng.uniform(1.0, 2.5)  # cycles per object radius
    stripe_amp = rng.uniform(0.05, 0.15)
    stripe_phase = rng.uniform(0.0, 2 * np.pi)

    def per_frame(values: np.ndarray) -> np.ndarray:
        return values[:, None, None]

    dx, dy = xs - per_frame(track.cx), ys - per_frame(track.cy)
    cos, sin = per_frame(np.cos(track.angle)), per_frame(np.sin(track.angle))
    extent = per_frame(track.scale) * radius
    u = (dx * cos + dy * sin) / extent
    v = (dy * cos - dx * sin) / extent
    mask = _inside(shape, u, v)
    # The texture is fixed to the object, so it turns and scales with it.
    texture = 1.0 + stripe_amp * np.sin(
        2 * np.pi * stripe_freq * (u * np.cos(stripe_dir) + v * np.sin(stripe_dir)) + stripe_phase
    )
    painted = np.clip(texture[..., None] * colour, 0.0, 255.0)
    weight = np.where(mask, per_frame(track.alpha), 0.0)[..., None]
    image *= 1.0 - weight
    image += weight * painted
    return mask


def _check_geometry(frames: int, size: int) -> None:
    if frames < 2 or size < 16:
        raise ValueError(f"need frames >= 2 and size >= 16, got frames={frames}, size={size}")


def _track_of(class_name: str, rng: np.random.Generator, frames: int, size: int) -> tuple[str, float, _Track]:
    """Shape, radius and forward-time pose of a class's object (the first draws of a clip's generator)."""
    if class_name in _MOTION_OF:
        return _temporal_track(_MOTION_OF[class_name][0], rng, frames, size)
    if class_name in _STATIC_CLASS_SHAPES:
        return _static_track(_STATIC_CLASS_SHAPES[class_name], rng, frames, size)
    raise ValueError(f"unknown probe class {class_name!r}; known: {class_names()}")


def _paint(
    class_name: str, shape: str, radius: float, track: _Track, rng: np.random.Generator, size: int,
    with_object: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The look of a clip drawn from `rng` (background, distractors, the object's colour and texture)
    around a given object and track."""
    frames = track.cx.size
    coords = np.arange(size, dtype=np.float64) + 0.5  # pixel centres
    xs, ys = coords[None, :], coords[:, None]
    palette = TEMPORAL_PALETTE if class_name in _MOTION_OF else STATIC_PALETTE
    image = np.repeat(_background(rng, size, xs, ys)[None], frames, axis=0)
    _composite_distractors(image, rng, xs, ys)
    if with_object:
        mask = _composite_object(image, rng, shape, radius, track, palette, xs, ys)
    else:
        mask = np.zeros((frames, size, size), dtype=bool)
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return pixels, mask


def _render(
    class_name: str, rng: np.random.Generator, frames: int, size: int, with_object: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Render a clip in forward time; `with_object=False` leaves out the probe object."""
    _check_geometry(frames, size)
    shape, radius, track = _track_of(class_name, rng, frames, size)
    return _paint(class_name, shape, radius, track, rng, size, with_object)


def render_clip(
    class_name: str, rng: np.random.Generator, frames: int = 16, size: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """Render one probe clip: RGB frames uint8 (T, H, W, 3) and the object mask bool (T, H, W)."""
    return _in_class_order(class_name, *_render(class_name, rng, frames, size))


def _in_class_order(class_name: str, pixels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A clip rendered in forward time, reversed for the second class of a mirror pair."""
    if _MOTION_OF.get(class_name, ("", False))[1]:
        pixels, mask = pixels[::-1], mask[::-1]
    return np.ascontiguousarray(pixels), np.ascontiguousarray(mask)


# --------------------------------------------------------------------------------------------
# Appearance-free clips (after Ilic et al., ECCV 2022: noise moved by the action's motion)

NOISE_LEVELS = (0, 255)  # black-and-white noise: grey, so the 4:2:0 video keeps it exactly


def _object_coords(
    track: _Track, radius: float, t: int, xs: np.ndarray, ys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Object coordinates (u, v) of pixel positions (xs, ys) at frame t of `track`."""
    dx, dy = xs - track.cx[t], ys - track.cy[t]
    cos, sin = np.cos(track.angle[t]), np.sin(track.angle[t])
    extent = track.scale[t] * radius
    return (dx * cos + dy * sin) / extent, (dy * cos - dx * sin) / extent


def _object_to_pixels(
    track: _Track, radius: float, t: int, u: np.ndarray, v: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (x, y) of object coordinates (u, v) at frame t (the inverse of _object_coords)."""
    cos, sin = np.cos(track.angle[t]), np.sin(track.angle[t])
    extent = track.scale[t] * radius
    return track.cx[t] + extent * (u * cos - v * sin), track.cy[t] + extent * (u * sin + v * cos)


def _render_appearance_free(
    class_name: str, rng: np.random.Generator, frames: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Forward-time appearance-free clip: every frame is i.i.d. black-and-white noise; inside the object
    each pixel copies the pixel of the previous frame that the object's motion carried there, outside it
    the background noise stands still (as in Ilic et al.'s AFD, where noise moves with the optical flow),
    and the background an object uncovers is drawn fresh.

    The copy map is injective (object pixels copy from inside the previous frame's object, background
    pixels from outside it; when two object pixels would copy one source pixel, the one whose source
    point lies nearest to that pixel's centre copies, the other is drawn fresh), and it depends on the
    track and the coherence draws only, never on noise values, so each frame is a set of distinct i.i.d.
    draws: exactly i.i.d. noise, whatever the class. The object shows only between frames, where its
    noise moves and the background's does not. A fade is a fade of coherence: each object pixel copies
    with probability alpha(t), else it is drawn fresh.
    """
    _check_geometry(frames, size)
    shape, radius, track = _track_of(class_name, rng, frames, size)
    return _paint_noise(shape, radius, track, rng, size)


def _paint_noise(
    shape: str, radius: float, track: _Track, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The appearance-free look drawn from `rng`: noise frames and the coherence draws (see above)."""
    frames = track.cx.size
    coords = np.arange(size, dtype=np.float64) + 0.5
    xs, ys = np.broadcast_to(coords[None, :], (size, size)), np.broadcast_to(coords[:, None], (size, size))
    low, high = NOISE_LEVELS
    noise = np.where(rng.random((frames, size, size)) < 0.5, low, high).astype(np.uint8)
    coherent = rng.random((frames, size, size))
    mask = np.stack([_inside(shape, *_object_coords(track, radius, t, xs, ys)) for t in range(frames)])
    pixels = noise.copy()
    for t in range(1, frames):
        ty, tx = np.nonzero(mask[t] & (coherent[t] < track.alpha[t]))
        # where the object point at each target pixel was one frame earlier, and the pixel holding it
        u, v = _object_coords(track, radius, t, xs[ty, tx], ys[ty, tx])
        sx, sy = _object_to_pixels(track, radius, t - 1, u, v)
        col, row = np.floor(sx).astype(int), np.floor(sy).astype(int)
        inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
        ty, tx, sx, sy, col, row = (a[inside] for a in (ty, tx, sx, sy, col, row))
        keep = mask[t - 1][row, col]
        ty, tx, sx, sy, col, row = (a[keep] for a in (ty, tx, sx, sy, col, row))
        # one copy per source pixel: the target whose source point is nearest to the source's centre
        distance = (sx - col - 0.5) ** 2 + (sy - row - 0.5) ** 2
        order = np.lexsort((distance, row * size + col))
        source = (row * size + col)[order]
        first = np.ones(source.size, dtype=bool)
        first[1:] = source[1:] != source[:-1]
        chosen = order[first]
        pixels[t][ty[chosen], tx[chosen]] = pixels[t - 1][row[chosen], col[chosen]]
        still = ~mask[t] & ~mask[t - 1]  # background seen in both frames keeps its noise
        pixels[t][still] = pixels[t - 1][still]
    return np.repeat(pixels[..., None], 3, axis=-1), mask


def render_appearance_free_clip(
    class_name: str, rng: np.random.Generator, frames: int = 16, size: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """Render one appearance-free probe clip: grey noise frames uint8 (T, H, W, 3), object mask (T, H, W).

    The generator's first draws are the object's track, as in `render_clip`: with the same generator
    state both clips have the same motion and the same mask.
    """
    return _in_class_order(class_name, *_render_appearance_free(class_name, rng, frames, size))


RENDERERS = {False: render_clip, True: render_appearance_free_clip}  # keyed by `appearance_free`


# --------------------------------------------------------------------------------------------
# Pairs for the static/dynamic estimate (Kowal et al., CVPR 2022): two clips sharing one factor

PAIR_KINDS = {
    "appearance": "the same look, the motion reversed: a clip and its own reverse (the analysis reverses "
                  "the sampled clip, so the pair shares every frame)",
    "motion": "the same motion (track, turn, scale, fade), another look: shape, colour, texture, "
              "background and distractors drawn afresh (a static class keeps its shape: it is the class)",
}
PAIRS_FILE = "pairs.csv"


def _pair_rngs(seed: int, class_name: str, index: int) -> tuple[np.random.Generator, ...]:
    """(track, look of a, look of b) generators of motion pair `index` of `class_name`."""
    clip_rng(seed, class_name, index)  # checks the arguments
    sequence = np.random.SeedSequence([seed, class_names().index(class_name), index, 1])
    return tuple(np.random.default_rng(child) for child in sequence.spawn(3))


def _look_shape(class_name: str, shape: str, rng: np.random.Generator) -> str:
    """Another shape a temporal class's object may take (rotations keep asymmetric ones)."""
    if class_name not in _MOTION_OF:
        return shape
    shapes = ROTATION_SHAPES if _MOTION_OF[class_name][0] == "rotate_cw" else TEMPORAL_SHAPES
    return str(shapes[rng.integers(len(shapes))])


def render_motion_pair(
    class_name: str, seed: int, index: int, frames: int = 16, size: int = 48, appearance_free: bool = False
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Two clips of one motion with two independent looks (`PAIR_KINDS["motion"]`), each as frames
    (T, H, W, 3) and object mask (T, H, W)."""
    _check_geometry(frames, size)
    track_rng, *looks = _pair_rngs(seed, class_name, index)
    shape, radius, track = _track_of(class_name, track_rng, frames, size)
    clips = []
    for look in looks:
        drawn = _look_shape(class_name, shape, look)
        if appearance_free:
            pixels, mask = _paint_noise(drawn, radius, track, look, size)
        else:
            pixels, mask = _paint(class_name, drawn, radius, track, look, size)
        clips.append(_in_class_order(class_name, pixels, mask))
    return clips[0], clips[1]


def write_pair_dataset(
    out: str | Path, pairs_per_class: int, seed: int, frames: int = 16, size: int = 48,
    appearance_free: bool = False, progress: bool = True,
) -> Path:
    """Write `pairs_per_class` pairs of each kind (`PAIR_KINDS`) per class: videos, pairs.csv (kind, class,
    a, b) and classes.json; an appearance pair's `a` is the probe set's clip of the same seed and index,
    its `b` is empty (the reverse of the sampled clip)."""
    from tqdm import tqdm

    if pairs_per_class < 1:
        raise ValueError(f"pairs_per_class must be >= 1, got {pairs_per_class}")
    if size % 2:
        raise ValueError(f"size must be even (yuv420p video), got {size}")
    root = Path(out)
    rows: list[tuple[str, str, str, str]] = []
    with tqdm(total=pairs_per_class * len(PROBE_CLASSES), desc="probe pairs", unit="pair",
              disable=not progress) as bar:
        for probe_class in PROBE_CLASSES:
            name = probe_class.name
            for folder in ("appearance", "motion"):
                (root / folder / name).mkdir(parents=True, exist_ok=True)
            for index in range(pairs_per_class):
                pixels, _ = RENDERERS[appearance_free](name, clip_rng(seed, name, index), frames, size)
                single = f"appearance/{name}/{clip_id(name, index)}.mp4"
                encode_mp4(pixels, root / single)
                rows.append(("appearance", name, single, ""))
                pair = render_motion_pair(name, seed, index, frames, size, appearance_free)
                paths = [f"motion/{name}/{clip_id(name, index)}_{side}.mp4" for side in "ab"]
                for (pixels, _), relative in zip(pair, paths):
                    encode_mp4(pixels, root / relative)
                rows.append(("motion", name, *paths))
                bar.update()
    meta = {"classes": [{"name": c.name, "kind": c.kind, "mirror_of": c.mirror_of} for c in PROBE_CLASSES],
            "frames": frames, "size": size, "seed": seed, "pairs_per_class": pairs_per_class, "fps": FPS,
            "appearance_free": appearance_free, "pair_kinds": PAIR_KINDS}
    (root / "classes.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    with open(root / PAIRS_FILE, "w", newline="", encoding="utf-8") as handle:  # last: marks a complete set
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("kind", "class", "a", "b"))
        writer.writerows(rows)
    return root


# --------------------------------------------------------------------------------------------
# Writing


@functools.cache
def _ffmpeg() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def encode_mp4(pixels: np.ndarray, path: str | Path, fps: int = FPS) -> None:
    """Encode uint8 RGB frames (T, H, W, 3), H and W even, as an H.264 yuv420p mp4 at `path`."""
    frames, height, width, channels = pixels.shape
    if pixels.dtype != np.uint8 or channels != 3:
        raise ValueError(f"need uint8 (T, H, W, 3) frames, got {pixels.dtype} {pixels.shape}")
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs an even frame size, got {width}x{height}")
    command = [
        _ffmpeg(), "-loglevel", "error", "-y", "-nostdin",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
        "-framerate", str(fps), "-i", "-",
        # qp 0: lossless H.264 of the 4:2:0 picture. One thread and bitexact flags keep the
        # bytes identical from run to run; yuv420p keeps the files playable in browsers.
        "-c:v", "libx264", "-preset", "medium", "-qp", "0", "-pix_fmt", "yuv420p",
        "-threads", "1", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
        "-frames:v", str(frames), str(path),
    ]  # fmt: skip
    result = subprocess.run(
        command, input=np.ascontiguousarray(pixels).tobytes(), capture_output=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed on {path}: {result.stderr.decode(errors='replace')}")


def save_mask(path: str | Path, mask: np.ndarray) -> None:
    """Save `mask` under key "mask" in an .npz that np.load reads, with byte-identical output."""
    # np.savez_compressed stamps the zip entry with the current time; a fixed stamp keeps the
    # file a function of the mask alone.
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(mask, dtype=bool), allow_pickle=False)
    entry = zipfile.ZipInfo("mask.npy", date_time=(1980, 1, 1, 0, 0, 0))
    entry.compress_type = zipfile.ZIP_DEFLATED
    entry.external_attr = 0o644 << 16
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(entry, buffer.getvalue())


def mask_path(root: str | Path, clip_path: str | Path) -> Path:
    """Path of the mask file of a clip given by its labels.csv path (or any path with its id)."""
    return Path(root) / "masks" / f"{Path(clip_path).stem}.npz"


def load_mask(root: str | Path, clip_path: str | Path) -> np.ndarray:
    """Object mask bool (T, H, W) of a clip given by its labels.csv path."""
    with np.load(mask_path(root, clip_path), allow_pickle=False) as archive:
        return archive["mask"]


def write_probe_dataset(
    out: str | Path,
    clips_per_class: int,
    seed: int,
    frames: int = 16,
    size: int = 48,
    progress: bool = True,
    appearance_free: bool = False,
) -> Path:
    """Render and write the probe dataset (videos, masks, labels.csv, classes.json); return `out`.

    `appearance_free`: every clip as noise moved by its class's motion (`render_appearance_free_clip`);
    same files, same seeds (and the same masks) as the regular set, and classes.json says so.
    """
    from tqdm import tqdm

    if clips_per_class < 1:
        raise ValueError(f"clips_per_class must be >= 1, got {clips_per_class}")
    if size % 2:
        raise ValueError(f"size must be even (yuv420p video), got {size}")
    root = Path(out)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    with tqdm(
        total=clips_per_class * len(PROBE_CLASSES), desc="probe clips", unit="clip",
        disable=not progress,
    ) as bar:  # fmt: skip
        for probe_class in PROBE_CLASSES:
            (root / probe_class.name).mkdir(exist_ok=True)
            for index in range(clips_per_class):
                rng = clip_rng(seed, probe_class.name, index)
                pixels, mask = RENDERERS[appearance_free](probe_class.name, rng, frames=frames, size=size)
                relative = f"{probe_class.name}/{clip_id(probe_class.name, index)}.mp4"
                encode_mp4(pixels, root / relative)
                save_mask(mask_path(root, relative), mask)
                rows.append((relative, probe_class.name))
                bar.update()
    # Written last: a directory without labels.csv is an interrupted run.
    meta = {
        "classes": [
            {"name": c.name, "kind": c.kind, "mirror_of": c.mirror_of} for c in PROBE_CLASSES
        ],
        "frames": frames,
        "size": size,
        "seed": seed,
        "clips_per_class": clips_per_class,
        "fps": FPS,
    }
    if appearance_free:  # only then: regular sets keep their bytes
        meta["appearance_free"] = True
    (root / "classes.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("path", "label"))
        writer.writerows(rows)
    return root
