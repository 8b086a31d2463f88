"""Tests for the synthetic temporal-probe dataset (workbench.probe)."""

from __future__ import annotations

import csv
import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from workbench import probe
from workbench.video import read_frames, video_info

FRAMES, SIZE, SEED = 8, 48, 11
PAIRS = [
    ("move_left", "move_right"),
    ("move_up", "move_down"),
    ("rotate_cw", "rotate_ccw"),
    ("grow", "shrink"),
    ("fade_in", "fade_out"),
]
STATIC = ["static_cross", "static_ring", "static_triangle", "static_bar"]


def decode(path: Path) -> np.ndarray:
    """All frames of a video as uint8 (T, H, W, 3), through the workbench's own decoding layer."""
    return read_frames(path).numpy()


def render(class_name: str, seed: int, index: int, size: int = SIZE) -> tuple[np.ndarray, ...]:
    """Clip frames, mask and the same clip rendered without the object (time order applied)."""
    pixels, mask = probe.render_clip(class_name, probe.clip_rng(seed, class_name, index), FRAMES, size)
    background, _ = probe._render(
        class_name, probe.clip_rng(seed, class_name, index), FRAMES, size, with_object=False
    )
    if class_name in {second for _, second in PAIRS}:  # rendered forwards, then reversed
        background = background[::-1]
    return pixels, mask, background


def file_bytes(root: Path) -> dict[str, bytes]:
    """Contents of every file under `root`, by relative posix path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A probe dataset with one clip per class."""
    root = tmp_path_factory.mktemp("probe") / "data"
    return probe.write_probe_dataset(root, 1, seed=SEED, frames=FRAMES, size=SIZE, progress=False)


def test_class_table() -> None:
    names = probe.class_names()
    assert len(probe.PROBE_CLASSES) == 14
    assert names == [name for pair in PAIRS for name in pair] + STATIC
    mirrors, kinds = probe.mirror_table(), probe.class_kinds()
    for first, second in PAIRS:
        assert mirrors[first] == second and mirrors[second] == first
        assert kinds[first] == kinds[second] == "temporal"
    for name in STATIC:
        assert mirrors[name] is None and kinds[name] == "static"
    assert all(isinstance(c, probe.ProbeClass) for c in probe.PROBE_CLASSES)
    with pytest.raises(dataclasses.FrozenInstanceError):
        probe.PROBE_CLASSES[0].name = "x"  # type: ignore[misc]


def test_render_shapes_and_determinism() -> None:
    for name in probe.class_names():
        pixels, mask = probe.render_clip(name, np.random.default_rng(5), frames=FRAMES, size=SIZE)
        again, mask_again = probe.render_clip(name, np.random.default_rng(5), frames=FRAMES, size=SIZE)
        assert pixels.dtype == np.uint8 and pixels.shape == (FRAMES, SIZE, SIZE, 3)
        assert mask.dtype == bool and mask.shape == (FRAMES, SIZE, SIZE)
        assert np.array_equal(pixels, again) and np.array_equal(mask, mask_again)
        assert mask.any(axis=(1, 2)).all(), f"{name}: object missing in some frame"
        other, _ = probe.render_clip(name, np.random.default_rng(6), frames=FRAMES, size=SIZE)
        assert not np.array_equal(pixels, other)
    with pytest.raises(ValueError):
        probe.render_clip("spin", np.random.default_rng(0))


def test_mask_is_exactly_the_object() -> None:
    for name in probe.class_names():
        pixels, mask, background = render(name, SEED, 0)
        # The object is drawn last and differs from what lies beneath it in every masked pixel,
        # so the mask is exactly the set of pixels the object changes.
        assert np.array_equal((pixels != background).any(axis=-1), mask), name


def test_mirror_pairs_are_time_reversals() -> None:
    for first, second in PAIRS:
        for index in range(3):
            forward, forward_mask = probe.render_clip(first, probe.clip_rng(SEED, first, index))
            backward, backward_mask = probe.render_clip(second, probe.clip_rng(SEED, first, index))
            assert np.array_equal(backward, forward[::-1]), (first, second)
            assert np.array_equal(backward_mask, forward_mask[::-1])
            assert not np.array_equal(backward, forward)  # order really changes the clip


def _orientation(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    x, y = xs - xs.mean(), ys - ys.mean()
    return 0.5 * float(np.arctan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean()))


def _centre(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_motions_do_what_their_names_say() -> None:
    for index in range(4):
        clips = {name: render(name, SEED, index, size=64) for name in probe.class_names()}
        shift = {name: _centre(clips[name][1][-1]) - _centre(clips[name][1][0]) for name in clips}
        assert shift["move_left"][0] < -8 and shift["move_right"][0] > 8
        assert shift["move_up"][1] < -8 and shift["move_down"][1] > 8
        area = {name: clips[name][1].sum(axis=(1, 2)) for name in ("grow", "shrink")}
        assert area["grow"][-1] > 4 * area["grow"][0] and area["shrink"][0] > 4 * area["shrink"][-1]
        for name, sign in (("rotate_cw", 1.0), ("rotate_ccw", -1.0)):
            angles = np.array([_orientation(m) for m in clips[name][1]])
            steps = (np.diff(angles) + np.pi / 2) % np.pi - np.pi / 2  # axis angle, mod 180 deg
            # y points down, so a growing angle is clockwise on screen
            assert sign * np.degrees(steps.sum()) > 100, name
        for name in ("fade_in", "fade_out"):
            pixels, mask, background = clips[name]
            contrast = [
                np.abs(pixels[t].astype(int) - background[t])[mask[t]].mean() for t in (0, -1)
            ]
            assert (contrast[1] > 3 * contrast[0]) == (name == "fade_in"), name


def test_static_colours_and_shapes_never_temporal() -> None:
    temporal = np.array(probe.TEMPORAL_PALETTE, dtype=float)
    static = np.array(probe.STATIC_PALETTE, dtype=float)
    assert np.linalg.norm(temporal[:, None] - static[None], axis=-1).min() > 150
    assert not set(probe.STATIC_SHAPES) & set(probe.TEMPORAL_SHAPES)
    for name in probe.class_names():
        for index in range(3):
            pixels, mask = probe.render_clip(name, probe.clip_rng(SEED, name, index))
            frame = 0 if name == "fade_out" else -1  # a frame where the object is opaque
            colour = np.median(pixels[frame][mask[frame]].astype(float), axis=0)
            nearest_static = np.linalg.norm(static - colour, axis=1).min()
            nearest_temporal = np.linalg.norm(temporal - colour, axis=1).min()
            if probe.class_kinds()[name] == "static":
                assert nearest_static < 40 < nearest_temporal, (name, colour)
            else:
                assert nearest_temporal < 40 < nearest_static, (name, colour)


def test_dataset_layout(dataset: Path) -> None:
    with open(dataset / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["label"] for row in rows] == probe.class_names()
    assert len({row["path"] for row in rows}) == len(rows)
    for row in rows:
        assert row["path"] == f"{row['label']}/{row['label']}_00000.mp4"
        assert (dataset / row["path"]).is_file()
        assert (dataset / "masks" / f"{row['label']}_00000.npz").is_file()
    meta = json.loads((dataset / "classes.json").read_text(encoding="utf-8"))
    assert (meta["frames"], meta["size"], meta["seed"]) == (FRAMES, SIZE, SEED)
    assert meta["classes"] == [
        {"name": c.name, "kind": c.kind, "mirror_of": c.mirror_of} for c in probe.PROBE_CLASSES
    ]


def test_decoded_clips_match_render_and_masks(dataset: Path) -> None:
    with open(dataset / "labels.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        name = row["label"]
        assert video_info(dataset / row["path"])["num_frames"] == FRAMES
        decoded = decode(dataset / row["path"]).astype(int)
        pixels, mask, background = render(name, SEED, 0)
        assert decoded.shape == pixels.shape
        assert np.abs(decoded - pixels).mean() < 4, name  # lossless 4:2:0, chroma edges blur
        stored = probe.load_mask(dataset, row["path"])
        assert stored.dtype == bool and np.array_equal(stored, mask), name
        # In the decoded video the object is where the mask says: pixels that differ from the
        # object-free render overlap the mask, and differ far more inside it than outside.
        change = np.abs(decoded - background).sum(axis=-1)
        changed = change > 40
        iou = (changed & mask).sum() / (changed | mask).sum()
        assert iou > 0.6, (name, iou)
        assert change[mask].mean() > 5 * change[~mask].mean(), name


def test_same_seed_same_bytes_other_seed_differs(dataset: Path, tmp_path: Path) -> None:
    again = probe.write_probe_dataset(
        tmp_path / "again", 1, seed=SEED, frames=FRAMES, size=SIZE, progress=False
    )
    first, second = file_bytes(dataset), file_bytes(again)
    assert first.keys() == second.keys()
    for name in ("labels.csv", "classes.json"):
        assert first[name] == second[name]
    masks = [key for key in first if key.startswith("masks/")]
    assert len(masks) == 14 and all(first[key] == second[key] for key in masks)
    assert all(first[key] == second[key] for key in first if key.endswith(".mp4"))  # bonus
    # np.savez_compressed would stamp the wall clock into the zip: equal only within 2 seconds.
    with zipfile.ZipFile(dataset / masks[0]) as archive:
        assert [entry.date_time for entry in archive.infolist()] == [(1980, 1, 1, 0, 0, 0)]

    other = probe.write_probe_dataset(
        tmp_path / "other", 1, seed=SEED + 1, frames=FRAMES, size=SIZE, progress=True
    )
    third = file_bytes(other)
    assert first["classes.json"] != third["classes.json"]
    assert all(first[key] != third[key] for key in masks)
    assert all(first[key] != third[key] for key in first if key.endswith(".mp4"))


def test_rejects_odd_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        probe.write_probe_dataset(tmp_path, 1, seed=0, size=47, progress=False)
