"""Tests for workbench.datasets: class folders, CSV files, list files, auto-detection."""

from __future__ import annotations

import json
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from workbench.datasets import VideoDataset, VideoItem, open_dataset
from workbench.models.spec import ModelSpec

SPEC = ModelSpec(scheme="tsn", backbone="tiny", num_classes=2, frames=4, input_size=16, resize=20)


def write_mp4(path: Path, level: int, frames: int = 6) -> None:
    """A small grey H.264 video (24x32) of brightness `level`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(str(path), (32, 24), fps=10, ffmpeg_log_level="error")
    writer.send(None)
    for _ in range(frames):
        writer.send(np.full((24, 32, 3), level, np.uint8).tobytes())
    writer.close()


def write_frame_folder(folder: Path, level: int, frames: int = 6) -> None:
    """A Something-v1 style frame folder (00001.jpg ...) of brightness `level`."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(1, frames + 1):
        Image.fromarray(np.full((24, 32, 3), level, np.uint8)).save(folder / f"{index:05d}.jpg")


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """root/push/{a.mp4, b/}, root/pull/{c.mp4, d/} plus files that are not videos."""
    root = tmp_path_factory.mktemp("folders")
    write_mp4(root / "push" / "a.mp4", 200)
    write_frame_folder(root / "push" / "b", 200)
    write_mp4(root / "pull" / "c.mp4", 50)
    write_frame_folder(root / "pull" / "d", 50)
    (root / "push" / "notes.txt").write_text("not a video")
    (root / ".hidden").mkdir()
    return root


def test_from_folder(class_folders: Path) -> None:
    dataset = VideoDataset.from_folder(class_folders)
    assert dataset.classes == ["pull", "push"] and dataset.class_info is None
    assert [(Path(i.path).name, i.label, i.label_name) for i in dataset.items] == [
        ("c.mp4", 0, "pull"),
        ("d", 0, "pull"),
        ("a.mp4", 1, "push"),
        ("b", 1, "push"),
    ]
    assert len(dataset) == 4 and dataset.root == class_folders
    assert open_dataset(class_folders).items == dataset.items


def test_relative_root_gives_absolute_paths(class_folders: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(class_folders.parent)
    dataset = open_dataset(class_folders.name)
    assert all(Path(item.path).is_absolute() for item in dataset.items)


def test_items_load_as_model_clips(class_folders: Path) -> None:
    dataset = open_dataset(class_folders, spec=SPEC)
    clip, label = dataset[2]  # push/a.mp4, brightness 200
    assert clip.shape == (4, 3, 16, 16) and clip.dtype == torch.float32 and label == 1
    expected = (200 / 255 - SPEC.mean[0]) / SPEC.std[0]
    assert abs(float(clip[:, 0].mean()) - expected) < 0.05
    frames_clip, frames_label = dataset[3]  # push/b frame folder
    assert frames_clip.shape == (4, 3, 16, 16) and frames_label == 1
    batch, labels = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch.shape == (4, 4, 3, 16, 16) and labels.tolist() == [0, 0, 1, 1]
    train = dataset.with_spec(SPEC, train=True)
    assert train[0][0].shape == (4, 3, 16, 16)
    with pytest.raises(TypeError, match="spec"):
        VideoDataset.from_folder(class_folders)[0]


def test_from_csv_with_classes_json(tmp_path: Path, class_folders: Path) -> None:
    write_mp4(tmp_path / "videos" / "x.mp4", 100)
    absolute = class_folders / "pull" / "c.mp4"
    (tmp_path / "labels.csv").write_text(f"path,label\nvideos/x.mp4,push\n{absolute},pull\n")
    classes = {"classes": [{"name": "push", "kind": "temporal"}, {"name": "pull", "kind": "temporal"}]}
    (tmp_path / "classes.json").write_text(json.dumps(classes))
    dataset = open_dataset(tmp_path)
    assert dataset.classes == ["push", "pull"]  # order from classes.json, not sorted
    assert dataset.class_info == classes["classes"]
    assert dataset.items == [
        VideoItem(str(tmp_path / "videos" / "x.mp4"), 0, "push"),
        VideoItem(str(absolute), 1, "pull"),
    ]
    clip, label = dataset.with_spec(SPEC)[0]
    assert clip.shape == (4, 3, 16, 16) and label == 0


def test_from_csv_labels(tmp_path: Path) -> None:
    (tmp_path / "names.csv").write_text("path,label,extra\nb.mp4,walk,1\na.mp4,run,2\nc.mp4,walk,3\n")
    named = open_dataset(tmp_path / "names.csv")
    assert named.classes == ["run", "walk"] and [i.label for i in named.items] == [1, 0, 1]
    (tmp_path / "ints.csv").write_text("path,label\na.mp4,2\nb.mp4,0\n")
    numbered = VideoDataset.from_csv(tmp_path / "ints.csv", root="/data")
    assert numbered.classes == ["0", "1", "2"]
    assert numbered.items[0] == VideoItem(str(Path("/data/a.mp4")), 2, "2")
    (tmp_path / "bad.csv").write_text("file,class\na.mp4,0\n")
    with pytest.raises(ValueError, match="path,label"):
        VideoDataset.from_csv(tmp_path / "bad.csv")


def test_from_list_something_v1(tmp_path: Path) -> None:
    frames_root = tmp_path / "20bn-something-something-v1"
    write_frame_folder(frames_root / "1", 60, frames=5)
    write_frame_folder(frames_root / "2", 180, frames=9)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "val_videofolder.txt").write_text("1 5 1\n2 9 0\n\n")
    (lists / "category.txt").write_text("Pushing something\nPulling something\n")
    dataset = VideoDataset.from_list(lists / "val_videofolder.txt", frames_root, spec=SPEC)
    assert dataset.classes == ["Pushing something", "Pulling something"]
    assert dataset.items[0] == VideoItem(str(frames_root / "1"), 1, "Pulling something")
    clip, label = dataset[1]
    assert clip.shape == (4, 3, 16, 16) and label == 0
    (lists / "pairs.txt").write_text(f"{frames_root / '1'} 1\n")
    auto = open_dataset(lists / "pairs.txt")  # absolute path, 2 fields; classes from category.txt
    assert auto.items == [VideoItem(str(frames_root / "1"), 1, "Pulling something")]
    with pytest.raises(ValueError, match="label 2 outside 2 classes"):
        (lists / "pairs.txt").write_text("1 2\n")
        open_dataset(lists / "pairs.txt")
    (tmp_path / "plain.txt").write_text("1 0\n2 1\n")
    plain = open_dataset(tmp_path / "plain.txt", root=frames_root)
    assert plain.classes == ["0", "1"] and plain.items[1].path == str(frames_root / "2")
    (tmp_path / "broken.txt").write_text("1 five\n")
    with pytest.raises(ValueError, match=r"broken\.txt:1"):
        open_dataset(tmp_path / "broken.txt")


def test_open_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="no videos"):
        open_dataset(tmp_path)  # empty folder
    write_frame_folder(tmp_path / "1", 100)  # a frames root, not class folders
    with pytest.raises(ValueError, match="no videos"):
        open_dataset(tmp_path)
