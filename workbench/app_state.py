"""What the app's sidebar selects, resolved to files: model and clip sources, stored uploads.

No streamlit here: the app keeps these plain records in its session state, and tests and
reports can build the same selection without a browser.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .access import check_path, upload_root
from .demo import demo_checkpoints, demo_manifest, demo_probe_dir
from .errors import CheckpointError, VideoError

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ModelSource:
    """A checkpoint the user can pick: a shown label, its file and where it came from."""

    label: str
    path: str
    origin: str  # "demo" | "upload" | "path"
    scheme: str | None = None  # known without loading for demo models

    @property
    def is_demo(self) -> bool:
        """True for a shipped demo checkpoint (its metrics are in the manifest)."""
        return self.origin == "demo"


@dataclass(frozen=True)
class ClipSource:
    """A video the user can pick, with its true class when it comes from a labelled probe set."""

    label: str
    path: str
    origin: str  # "probe" | "upload" | "path"
    true_class: str | None = None


def file_stamp(path: str | Path) -> str:
    """Modification time and size of a file: a cache key that changes when the file does."""
    stat = Path(path).stat()
    return f"{stat.st_mtime_ns}-{stat.st_size}"


def demo_model_sources() -> list[ModelSource]:
    """The shipped demo zoo, one source per scheme, in registry order."""
    return [ModelSource(scheme, str(path), "demo", scheme) for scheme, path in demo_checkpoints().items()]


def demo_metrics() -> dict[str, dict]:
    """Manifest metrics of each demo checkpoint, keyed by its resolved path."""
    paths = {str(path.resolve()): scheme for scheme, path in demo_checkpoints().items()}
    by_scheme = {entry["scheme"]: entry.get("metrics") or {} for entry in demo_manifest()["models"]}
    return {path: by_scheme.get(scheme, {}) for path, scheme in paths.items()}


def upload_dir(session: str | None = None) -> Path:
    """Folder for uploaded files (under the system temp dir; never inside the repository): one per
    app session, removed with it (`remove_uploads`)."""
    folder = upload_root() / (_UNSAFE_NAME.sub("_", session) if session else "shared")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_uploads(folder: str | Path) -> None:
    """Delete a session's upload folder (when the session ends); only folders under the upload root."""
    folder = Path(folder)
    if folder.resolve().is_relative_to(upload_root().resolve()) and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)


def store_upload(name: str, data: bytes, folder: str | Path | None = None) -> Path:
    """Write uploaded bytes to a temp file named by their sha256 (same bytes -> same file)."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    safe = _UNSAFE_NAME.sub("_", Path(name).name).strip("._") or "upload"
    path = Path(folder) if folder is not None else upload_dir()
    path.mkdir(parents=True, exist_ok=True)
    target = path / f"{digest}-{safe}"
    if not target.exists():
        tmp = target.with_name(target.name + ".partial")
        tmp.write_bytes(data)
        tmp.replace(target)
    return target


def _typed_path(text: str, error: type[Exception], missing: str, what: str) -> Path:
    """A path typed into a box, without quotes and with ~ expanded; `error` when empty or missing."""
    cleaned = text.strip().strip('"').strip("'")
    if not cleaned:
        raise error(f"no {what} path given")
    path = typed_path(cleaned)
    if not path.exists():
        raise error(missing.format(name=cleaned))
    return path


def typed_path(text: str) -> Path:
    """A path typed into a box, without quotes; PathNotAllowed (before anything looks at it) when this
    process serves others and the path lies outside its data roots."""
    return check_path(text.strip().strip('"').strip("'"))


def checkpoint_path(text: str) -> Path:
    """A typed checkpoint path, checked to be an existing file (CheckpointError otherwise)."""
    path = _typed_path(text, CheckpointError, "cannot load {name!r}: no such file", "checkpoint")
    if path.is_dir():
        raise CheckpointError(f"cannot load {str(path)!r}: it is a directory, not a checkpoint file")
    return path


def video_path(text: str) -> Path:
    """A typed video path (file or frame folder), checked to exist (VideoError otherwise)."""
    return _typed_path(text, VideoError, "cannot decode {name!r}: no such file or folder", "video")


def unique_label(wanted: str, taken: set[str]) -> str:
    """`wanted`, or `wanted (2)`, `wanted (3)`... so that labels stay unique."""
    label, n = wanted, 2
    while label in taken:
        label, n = f"{wanted} ({n})", n + 1
    return label


def probe_clips(root: str | Path | None = None) -> list[ClipSource]:
    """The clips of a labelled probe folder (labels.csv), the shipped ones by default."""
    folder = Path(root) if root is not None else demo_probe_dir()
    labels = folder / "labels.csv"
    if not labels.is_file():
        return []
    with open(labels, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [
        ClipSource(Path(row["path"]).stem, str(folder / row["path"]), "probe", row["label"])
        for row in rows
        if (folder / row["path"]).is_file()
    ]
