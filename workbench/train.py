"""Small trainer: demo models and fine-tuning on a video dataset, resumable and seeded."""

from __future__ import annotations

import json
import math
import os
import random
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .datasets import VideoDataset, open_dataset, skipped_record
from .errors import DatasetError, VideoError
from .models import build_model, save_model
from .models.inference import predict_logits
from .models.spec import ModelSpec
from .video import preprocess, read_frames, sample_indices


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved with the checkpoint)."""

    scheme: str
    data: str
    out: str
    backbone: str = "resnet-tiny"
    frames: int = 8
    size: int = 48
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 5e-4
    seed: int = 0
    val_data: str | None = None
    val_fraction: float = 0.15
    max_shift: int = 4  # random translation (pixels), the same for every frame of a clip
    # probability that a clip of an order-free class (kind "static" in classes.json: defined by
    # appearance alone) is shown in a random frame order; teaches that its order carries no label
    order_free_p: float = 0.0
    threads: int = 0
    strict: bool = False  # stop at a video that cannot be decoded (default: skip it and list it)

    def command(self) -> str:
        """The CLI command that reproduces this run."""
        parts = [
            "python -m workbench train", f"--scheme {self.scheme}", f"--data {self.data}",
            f"--out {self.out}", f"--backbone {self.backbone}", f"--frames {self.frames}",
            f"--size {self.size}", f"--epochs {self.epochs}", f"--batch-size {self.batch_size}",
            f"--lr {self.lr}", f"--seed {self.seed}",
        ]
        if self.order_free_p:
            parts.append(f"--order-free-p {self.order_free_p}")
        if self.val_data:
            parts.append(f"--val-data {self.val_data}")
        return " ".join(parts)


class MemoryClips:
    """Every video of a dataset decoded once into uint8 tensors (T, H, W, 3); a video that cannot be
    decoded is left out and listed in `skipped` with its reason (`strict`: an error instead)."""

    def __init__(self, dataset: VideoDataset, indices: list[int], desc: str = "decoding",
                 strict: bool = False) -> None:
        self.videos, kept, self.skipped = [], [], []
        for i in tqdm(indices, desc=desc, leave=False):
            try:
                self.videos.append(read_frames(dataset.items[i].path))
            except VideoError as err:
                if strict:
                    raise VideoError(f"{err} (train without --strict to skip it)") from None
                self.skipped.append(skipped_record(dataset.relative_name(dataset.items[i]), str(err)))
                warnings.warn(f"skipped {dataset.relative_name(dataset.items[i])}: {err}", stacklevel=2)
                continue
            kept.append(i)
        if not kept:
            raise DatasetError(f"{desc}: no video of the dataset can be decoded")
        self.labels = torch.tensor([dataset.items[i].label for i in kept])
        kinds = class_metadata(dataset).get("class_kinds", {})
        self.order_free = {i for i, name in enumerate(dataset.classes) if kinds.get(name) == "static"}

    def __len__(self) -> int:
        return len(self.videos)

    def batch(
        self, which: list[int], spec: ModelSpec, train: bool, rng: np.random.Generator, max_shift: int,
        order_free_p: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled, augmented (train) and preprocessed clips (B, T, 3, S, S) with their labels."""
        clips = []
        for i in which:
            video = self.videos[i]
            idx = sample_indices(len(video), spec.frames, "segment", train=train, rng=rng)
            order_free = train and order_free_p and int(self.labels[i]) in self.order_free
            if order_free and rng.random() < order_free_p:  # the draw only for such clips: seeds stay valid
                idx = np.asarray(idx)[rng.permutation(len(idx))]
            frames = video[torch.as_tensor(idx)]
            if train and max_shift:
                frames = translate(frames, *rng.integers(-max_shift, max_shift + 1, size=2))
            clips.append(preprocess(frames, spec))
        return torch.stack(clips), self.labels[which]


def translate(frames: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Shift every frame by (dx, dy) pixels, repeating the edge (keeps time consistent)."""
    if dx == 0 and dy == 0:
        return frames
    t, h, w, c = frames.shape
    x = frames.permute(0, 3, 1, 2).float()
    pad = (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0))
    x = F.pad(x, pad, mode="replicate")
    top, left = max(-dy, 0), max(-dx, 0)
    x = x[:, :, top : top + h, left : left + w]
    return x.permute(0, 2, 3, 1).to(frames.dtype)


def split_indices(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Stratified train/validation split."""
    rng = random.Random(seed)
    train, val = [], []
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    for members in by_class.values():
        rng.shuffle(members)
        n_val = max(1, int(round(len(members) * fraction))) if len(members) > 1 else 0
        val += members[:n_val]
        train += members[n_val:]
    return sorted(train), sorted(val)


def class_metadata(dataset: VideoDataset) -> dict[str, Any]:
    """Class names plus mirror/kind tables when the dataset has a classes.json."""
    meta: dict[str, Any] = {"class_names": list(dataset.classes)}
    info = getattr(dataset, "class_info", None)
    if info:
        meta["mirror_of"] = {c["name"]: c.get("mirror_of") for c in info}
        meta["class_kinds"] = {c["name"]: c.get("kind", "static") for c in info}
    return meta


def accuracy(model: torch.nn.Module, clips: MemoryClips, spec: ModelSpec, batch_size: int) -> float:
    """Top-1 accuracy with evaluation sampling."""
    model.eval()
    rng = np.random.default_rng(0)
    correct = 0
    for start in range(0, len(clips), batch_size):
        which = list(range(start, min(start + batch_size, len(clips))))
        x, y = clips.batch(which, spec, False, rng, 0)
        correct += int((predict_logits(model, x).argmax(1) == y).sum())
    return correct / max(1, len(clips))


def state_path(out: str | Path) -> Path:
    """Where the resumable training state lives, next to the checkpoint."""
    out = Path(out)
    return out.with_name(out.name + ".train-state")


def train_model(config: TrainConfig, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Train, validate each epoch, keep the best checkpoint; resumes from a saved state."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    dataset = open_dataset(config.data)
    meta = class_metadata(dataset)
    labels = [item.label for item in dataset.items]
    if config.val_data:
        train_idx = list(range(len(dataset)))
        val_set = open_dataset(config.val_data)
        if list(val_set.classes) != list(dataset.classes):
            raise ValueError(f"validation classes of {config.val_data} differ from {config.data}")
        val_clips = MemoryClips(val_set, list(range(len(val_set))), "decoding val", config.strict)
    else:
        train_idx, val_idx = split_indices(labels, config.val_fraction, config.seed)
        val_clips = MemoryClips(dataset, val_idx, "decoding val", config.strict)
    train_clips = MemoryClips(dataset, train_idx, "decoding train", config.strict)
    skipped = train_clips.skipped + val_clips.skipped

    model = build_model(
        config.scheme, backbone=config.backbone, num_classes=len(dataset.classes),
        frames=config.frames, input_size=config.size, resize=config.size, **meta,
    )
    spec = model.spec
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_clips) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = min(steps_per_epoch, total // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    history: list[dict[str, Any]] = []
    start_epoch, best_acc = 0, -1.0
    saved = state_path(config.out)
    if resume and saved.exists():
        state = torch.load(saved, map_location="cpu", weights_only=True)
        if state["config"] == asdict(config):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            start_epoch, best_acc, history = state["epoch"], state["best_acc"], state["history"]
            torch.set_rng_state(state["torch_rng"])
            print(f"resuming {config.out} at epoch {start_epoch + 1}/{config.epochs}")
    for epoch in range(start_epoch, config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        order = rng.permutation(len(train_clips)).tolist()
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        started = time.perf_counter()
        bar = tqdm(range(steps_per_epoch), desc=f"{config.scheme} epoch {epoch + 1}/{config.epochs}",
                   disable=not progress, leave=False)
        for step in bar:
            which = order[step * config.batch_size : (step + 1) * config.batch_size]
            x, y = train_clips.batch(which, spec, True, rng, config.max_shift, config.order_free_p)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(y)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += loss.item() * len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.2%}")
        val_acc = accuracy(model, val_clips, spec, 64)
        record = {
            "epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
            "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        if progress:
            print(f"{config.scheme} epoch {epoch + 1}/{config.epochs}: loss {record['train_loss']:.3f} "
                  f"train {record['train_acc']:.1%} val {val_acc:.1%} ({record['seconds']:.0f}s)")
        if val_acc > best_acc:
            best_acc = val_acc
            save_model(model, config.out, history=history,
                       extra=run_extra(config, epoch + 1, val_acc, skipped))
        else:  # keep the best weights but the full history
            rewrite_history(config.out, history)
        tmp = saved.with_name(saved.name + ".tmp")
        torch.save({
            "config": asdict(config), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "best_acc": best_acc,
            "history": history, "torch_rng": torch.get_rng_state(),
        }, tmp)
        os.replace(tmp, saved)
    saved.unlink(missing_ok=True)
    return {"best_val_acc": best_acc, "history": history, "out": config.out, "skipped": skipped}


def run_extra(
    config: TrainConfig, epoch: int, val_acc: float, skipped: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """Provenance stored in the checkpoint (with the videos left out because they do not decode)."""
    extra = {
        "train_config": asdict(config), "command": config.command(), "best_epoch": epoch,
        "best_val_acc": val_acc, "torch": str(torch.__version__),
    }
    if skipped:
        extra["skipped_videos"] = list(skipped)
    return extra


def rewrite_history(out: str | Path, history: list[dict[str, Any]]) -> None:
    """Update the history stored in the best checkpoint without touching its weights."""
    data = torch.load(out, map_location="cpu", weights_only=True)
    data["history"] = history
    tmp = Path(str(out) + ".tmp")
    torch.save(data, tmp)
    os.replace(tmp, out)


def history_json(out: str | Path) -> str:
    """Training history of a checkpoint as JSON (for pages and reports)."""
    data = torch.load(out, map_location="cpu", weights_only=True)
    return json.dumps(data.get("history", []))
