"""Fingerprints that say whether two runs used the same files: checkpoints, videos, datasets, weights."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .datasets import VideoDataset

CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file; of a frame folder, over its files' names and bytes in name order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(f"{file.name}\n".encode())
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
    return digest.hexdigest()


def dataset_fingerprint(dataset: VideoDataset) -> str:
    """sha256 over (relative path, class, size) of every video (a frame folder: its file count)."""
    digest = hashlib.sha256()
    for item in dataset.items:
        path = Path(item.path)
        size = path.stat().st_size if path.is_file() else len(list(path.iterdir())) if path.is_dir() else -1
        digest.update(f"{dataset.relative_name(item)}\t{item.label_name}\t{size}\n".encode())
    return digest.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of a model's weights (for models that did not come from a file)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().reshape(-1).view("uint8"))  # bytes, no copy
    return digest.hexdigest()
