"""The probe's variants: appearance-free clips (noise moved by the class's motion) and the pairs of the
static/dynamic estimate. The regular probe's own contract is tests/test_probe.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from workbench import probe
from workbench.video import read_frames

FRAMES, SIZE, SEED = 16, 48, 11
SECOND_OF_PAIR = {"move_right", "move_down", "rotate_ccw", "shrink", "fade_out"}


def free_clip(name: str, seed: int = SEED, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return probe.render_appearance_free_clip(name, probe.clip_rng(seed, name, index), FRAMES, SIZE)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def carried(name: str, grey: np.ndarray, seed: int = SEED, index: int = 0) -> tuple[float, float]:
    """Share of object pixels equal to the pixel the object's motion brings there from the frame before
    (in forward time), and share of background pixels (outside the object in both frames) unchanged."""
    shape, radius, track = probe._track_of(name, probe.clip_rng(seed, name, index), FRAMES, SIZE)
    if name in SECOND_OF_PAIR:
        grey = grey[::-1]
    coords = np.arange(SIZE) + 0.5
    xs, ys = np.meshgrid(coords, coords)
    inside, outside = [], []
    for t in range(1, FRAMES):
        u, v = probe._object_coords(track, radius, t, xs, ys)
        sx, sy = probe._object_to_pixels(track, radius, t - 1, u, v)
        col = np.clip(np.floor(sx).astype(int), 0, SIZE - 1)
        row = np.clip(np.floor(sy).astype(int), 0, SIZE - 1)
        now = probe._inside(shape, u, v)
        before = probe._inside(shape, *probe._object_coords(track, radius, t - 1, xs, ys))
        inside.append((grey[t] == grey[t - 1][row, col])[now & before[row, col]])
        outside.append((grey[t] == grey[t - 1])[~now & ~before])
    return float(np.concatenate(inside).mean()), float(np.concatenate(outside).mean())


def test_every_frame_is_black_and_white_grey_noise_with_the_probe_motion() -> None:
    for name in probe.class_names():
        pixels, mask = free_clip(name)
        assert pixels.shape == (FRAMES, SIZE, SIZE, 3) and pixels.dtype == np.uint8
        assert set(np.unique(pixels)) <= set(probe.NOISE_LEVELS)
        assert (pixels == pixels[..., :1]).all()  # grey: 4:2:0 video keeps it exactly
        # the generator's first draws are the track: the same motion, hence the same mask, as the probe
        _, regular_mask = probe.render_clip(name, probe.clip_rng(SEED, name, 0), FRAMES, SIZE)
        assert np.array_equal(mask, regular_mask), name
        again, _ = free_clip(name)
        assert np.array_equal(pixels, again)


def test_single_frames_do_not_show_the_object() -> None:
    """Inside the object a frame has the same statistics as outside: half white, neighbours independent."""
    inside_white, outside_white, inside_equal, outside_equal = [], [], [], []
    for name in probe.class_names():
        for index in range(4):
            pixels, mask = free_clip(name, index=index)
            grey = pixels[..., 0] == 255
            inside_white.append(grey[mask])
            outside_white.append(grey[~mask])
            pairs = mask[:, :, 1:] & mask[:, :, :-1]
            equal = grey[:, :, 1:] == grey[:, :, :-1]
            inside_equal.append(equal[pairs])
            outside_equal.append(equal[~(mask[:, :, 1:] | mask[:, :, :-1])])
    for values in (inside_white, outside_white, inside_equal, outside_equal):
        flat = np.concatenate(values)
        # binomial standard error ~0.002 for ~10^5 pixels: 0.5 +- 0.015 is 7 standard errors
        assert abs(flat.mean() - 0.5) < 0.015, flat.mean()


def test_the_object_carries_its_noise_and_the_background_stands_still() -> None:
    for name in probe.class_names():
        pixels, _ = free_clip(name)
        inside, outside = carried(name, pixels[..., 0])
        assert outside == 1.0, (name, outside)  # the background's noise stands still
        # fades are fades of coherence (alpha 0.15 -> 1, mean ~0.6); every other motion is carried
        floor = 0.75 if name.startswith("fade") else 0.9
        assert inside > floor, (name, inside)


def test_mirror_pairs_are_time_reversals() -> None:
    for first, second in zip(*[iter(probe.class_names()[:10])] * 2):
        forward, _ = free_clip(first)
        backward, _ = probe.render_appearance_free_clip(second, probe.clip_rng(SEED, first, 0), FRAMES, SIZE)
        assert np.array_equal(backward, forward[::-1])


@pytest.fixture(scope="module")
def free_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("free") / "data"
    return probe.write_probe_dataset(root, 1, SEED, frames=8, size=SIZE, progress=False, appearance_free=True)


def test_appearance_free_set_keeps_the_probe_contract(free_set: Path, tmp_path: Path) -> None:
    regular = probe.write_probe_dataset(tmp_path / "regular", 1, SEED, frames=8, size=SIZE, progress=False)
    free, plain = file_bytes(free_set), file_bytes(regular)
    assert free.keys() == plain.keys()
    assert free["labels.csv"] == plain["labels.csv"]
    masks = [key for key in free if key.startswith("masks/")]
    assert len(masks) == 14 and all(free[key] == plain[key] for key in masks)  # same motion, same masks
    meta, plain_meta = (json.loads(d["classes.json"]) for d in (free, plain))
    assert meta.pop("appearance_free") is True and meta == plain_meta
    again = probe.write_probe_dataset(tmp_path / "again", 1, SEED, frames=8, size=SIZE, progress=False,
                                      appearance_free=True)
    assert file_bytes(again) == free
    for key in free:
        if key.endswith(".mp4"):  # lossless: the decoded video is the rendered noise
            name, index = key.split("/")[0], 0
            rendered, _ = probe.render_appearance_free_clip(name, probe.clip_rng(SEED, name, index), 8, SIZE)
            assert np.array_equal(read_frames(free_set / key).numpy(), rendered), key


def test_motion_pairs_share_the_track_not_the_look() -> None:
    for name in probe.class_names():
        for free in (False, True):
            (a, mask_a), (b, mask_b) = probe.render_motion_pair(name, SEED, 0, FRAMES, SIZE, free)
            assert a.shape == b.shape == (FRAMES, SIZE, SIZE, 3)
            assert (a != b).any(axis=-1).mean() > 0.3, (name, free)  # another look
            (again, _), _ = probe.render_motion_pair(name, SEED, 0, FRAMES, SIZE, appearance_free=free)
            assert np.array_equal(again, a)
            # one track: both objects' centres follow the track's centre (shapes may differ, and a
            # shape's centroid lies up to ~0.3 radius off its centre)
            _, _, track = probe._track_of(name, probe._pair_rngs(SEED, name, 0)[0], FRAMES, SIZE)
            centres = np.stack([track.cx, track.cy], 1)[::-1 if name in SECOND_OF_PAIR else 1]
            for mask in (mask_a, mask_b):
                for t in range(FRAMES):
                    ys, xs = np.nonzero(mask[t])
                    off = np.hypot(xs.mean() + 0.5 - centres[t, 0], ys.mean() + 0.5 - centres[t, 1])
                    assert off < 4, name


def test_pair_set_layout_and_seeds(tmp_path: Path) -> None:
    root = probe.write_pair_dataset(tmp_path / "pairs", 1, SEED, frames=8, size=SIZE, progress=False)
    with open(root / probe.PAIRS_FILE, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["kind"], r["class"]) for r in rows] == [
        (kind, name) for name in probe.class_names() for kind in ("appearance", "motion")]
    for row in rows:
        assert (root / row["a"]).is_file()
        assert (row["b"] == "") == (row["kind"] == "appearance")
        if row["b"]:
            assert (root / row["b"]).is_file()
    # an appearance pair's clip is the probe set's clip of the same seed and index
    name = "rotate_ccw"
    pixels, _ = probe.render_clip(name, probe.clip_rng(SEED, name, 0), 8, SIZE)
    decoded = read_frames(root / f"appearance/{name}/{name}_00000.mp4").numpy()
    assert np.abs(decoded.astype(int) - pixels).mean() < 4
    again = probe.write_pair_dataset(tmp_path / "again", 1, SEED, frames=8, size=SIZE, progress=False)
    assert file_bytes(again) == file_bytes(root)
