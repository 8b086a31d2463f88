"""Labelled video collections: class folders, CSV files and TSN/Something-v1 list files."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from workbench.access import NOT_AVAILABLE, current_policy
from workbench.errors import DatasetError, VideoError
from workbench.models.spec import ModelSpec
from workbench.video import VIDEO_EXTENSIONS, load_clip, video_info

CLASSES_FILE = "classes.json"  # {"classes": [{"name": ...}, ...]}: class order and extra info
LABELS_FILE = "labels.csv"  # columns path,label
CATEGORY_FILE = "category.txt"  # TSM's Something-v1 class names, one per line


@dataclass
class VideoItem:
    """One labelled video: a video file or a frame folder."""

    path: str
    label: int
    label_name: str


def _read_class_info(folder: Path) -> list[dict[str, Any]] | None:
    """The `classes` list of folder/classes.json, or None when there is none."""
    path = folder / CLASSES_FILE
    if not path.is_file():
        return None
    entries = json.loads(path.read_text())["classes"]
    if not all(isinstance(entry, dict) and "name" in entry for entry in entries):
        raise DatasetError(f"{path}: every entry of 'classes' needs a 'name'")
    return entries


def _resolve(path: str, base: Path) -> str:
    return str(Path(path) if Path(path).is_absolute() else base / path)


class VideoDataset(Dataset[tuple[torch.Tensor, int]]):
    """Labelled videos; with a `spec`, item i is (clip (T,3,S,S) float, label) for the model."""

    def __init__(
        self,
        items: list[VideoItem],
        classes: list[str],
        root: str | Path | None = None,
        class_info: list[dict[str, Any]] | None = None,
        spec: ModelSpec | None = None,
        *,
        train: bool = False,
        mode: str = "segment",
        rng: np.random.Generator | None = None,
    ) -> None:
        self.items = items
        self.classes = classes
        self.root = Path(root) if root is not None else None
        self.class_info = class_info
        self.spec = spec
        self.train = train
        self.mode = mode
        self.rng = rng  # None: fresh OS entropy per clip, so DataLoader workers differ

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """(clip (T,3,S,S) float32, label) sampled and preprocessed as `spec` says."""
        if self.spec is None:
            raise TypeError("VideoDataset needs spec=... to load clips; use .items for paths")
        item = self.items[index]
        clip = load_clip(item.path, self.spec, train=self.train, rng=self.rng, mode=self.mode)
        return clip[0], item.label

    def relative_name(self, item: VideoItem) -> str:
        """How runs name an item: its path relative to the dataset root (absolute outside it)."""
        path = Path(item.path)
        if self.root is not None and path.is_relative_to(self.root):
            return str(path.relative_to(self.root))
        return str(path)

    def with_spec(self, spec: ModelSpec, *, train: bool = False, mode: str = "segment") -> VideoDataset:
        """The same items, loading clips for `spec`."""
        return VideoDataset(
            self.items, self.classes, self.root, self.class_info, spec, train=train, mode=mode
        )

    @classmethod
    def from_folder(cls, root: str | Path, **options: Any) -> VideoDataset:
        """root/<class>/<video file or frame folder>; classes sorted (or as root/classes.json)."""
        root = Path(root).absolute()
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        class_info = _read_class_info(root)
        classes = [c["name"] for c in class_info] if class_info else [p.name for p in folders]
        unknown = [p.name for p in folders if p.name not in classes]
        if unknown:
            raise DatasetError(f"{root}: folders {unknown} are not classes in {CLASSES_FILE}")
        items = []
        for folder in folders:
            label = classes.index(folder.name)
            for entry in sorted(folder.iterdir()):
                is_video = entry.is_file() and entry.suffix.lower() in VIDEO_EXTENSIONS
                is_frame_folder = entry.is_dir() and not entry.name.startswith(".")
                if is_video or is_frame_folder:
                    items.append(VideoItem(str(entry), label, folder.name))
        return cls(items, classes, root, class_info, **options)

    @classmethod
    def from_csv(cls, csv_path: str | Path, root: str | Path | None = None, **options: Any) -> VideoDataset:
        """CSV with columns path,label (class name or int); paths relative to root or its folder."""
        csv_path = Path(csv_path)
        base = Path(root if root is not None else csv_path.parent).absolute()
        with csv_path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"path", "label"} <= set(reader.fieldnames or []):
                raise DatasetError(f"{csv_path}: needs columns path,label, has {reader.fieldnames}")
            rows = [(row["path"].strip(), row["label"].strip()) for row in reader]
        class_info = _read_class_info(csv_path.parent)
        if class_info:
            classes = [c["name"] for c in class_info]
        elif all(label.isdigit() for _, label in rows):
            classes = [str(i) for i in range(max((int(label) for _, label in rows), default=-1) + 1)]
        else:
            classes = sorted({label for _, label in rows})
        lookup = {name: index for index, name in enumerate(classes)}
        items = []
        for path, label in rows:
            index = lookup[label] if label in lookup else _int_label(label, classes, csv_path)
            items.append(VideoItem(_resolve(path, base), index, classes[index]))
        return cls(items, classes, base, class_info, **options)

    @classmethod
    def from_list(
        cls,
        list_path: str | Path,
        root: str | Path,
        classes: list[str] | None = None,
        **options: Any,
    ) -> VideoDataset:
        """Lines `path label` or `path num_frames label` (Something-v1); paths relative to root."""
        list_path, root = Path(list_path), Path(root).absolute()
        rows = []
        for number, line in enumerate(list_path.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) not in (2, 3) or not fields[-1].lstrip("-").isdigit():
                raise DatasetError(f"{list_path}:{number}: expected 'path [num_frames] label': {line!r}")
            rows.append((fields[0], int(fields[-1])))
        category_file = list_path.parent / CATEGORY_FILE
        if classes is None and category_file.is_file():
            classes = [name.strip() for name in category_file.read_text().splitlines() if name.strip()]
        if classes is None:
            classes = [str(i) for i in range(max((label for _, label in rows), default=-1) + 1)]
        items = []
        for path, label in rows:
            if not 0 <= label < len(classes):
                raise DatasetError(f"{list_path}: label {label} outside {len(classes)} classes")
            items.append(VideoItem(_resolve(path, root), label, classes[label]))
        return cls(items, classes, root, **options)


def _int_label(label: str, classes: list[str], source: Path) -> int:
    if label.isdigit() and int(label) < len(classes):
        return int(label)
    raise DatasetError(f"{source}: label {label!r} is not one of {len(classes)} classes")


def open_dataset(path: str | Path, *, root: str | Path | None = None, **options: Any) -> VideoDataset:
    """A dataset from a folder (labels.csv or class subfolders) or a .csv / .txt list file."""
    path = Path(path)
    if not current_policy().allows(path):  # served: before anything looks at it, the same answer for all
        raise DatasetError(f"{path}: {NOT_AVAILABLE}")
    if not path.exists():
        raise FileNotFoundError(f"no such dataset: {path}")
    if path.is_dir() and (path / LABELS_FILE).is_file():
        dataset = VideoDataset.from_csv(path / LABELS_FILE, root, **options)
    elif path.is_dir():
        dataset = VideoDataset.from_folder(path, **options)
    elif path.suffix.lower() == ".csv":
        dataset = VideoDataset.from_csv(path, root, **options)
    elif path.suffix.lower() in (".txt", ".lst"):
        dataset = VideoDataset.from_list(path, root if root is not None else path.parent, **options)
    else:
        raise DatasetError(f"{path}: not a dataset folder, .csv or .txt list")
    if not dataset.items:
        # e.g. a Something-v1 frames root: its subfolders are frame folders, not classes.
        raise DatasetError(f"{path}: no videos found (expected {LABELS_FILE} or class subfolders)")
    return dataset


def unreadable_reason(path: str | Path) -> str | None:
    """Why a dataset's video cannot be used (its VideoError message), or None when it opens."""
    try:
        video_info(path)
    except VideoError as err:
        return str(err)
    return None


def skipped_record(name: str, reason: str) -> dict[str, str]:
    """A skipped video as run.json and reports list it."""
    return {"video": name, "reason": reason}
