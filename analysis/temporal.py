"""Frame-order experiments: run every perturbed order of every video through every model.

`run_experiment` decodes each video once, builds all perturbed clips of it (analysis.perturb), runs
them through the models in batches under `torch.inference_mode`, and returns one row per
video x model x perturbation x repeat. With a run directory it writes each finished chunk of
videos as its own part file, so a killed run continues where it stopped; at the end it writes
results.parquet, summary.csv, class_sensitivity.csv, comparisons.csv and run.json. Under
torch.distributed (torchrun) the chunks are shared round robin between the ranks (workbench.distributed)
and rank 0 merges the part files in chunk order, so the rows are those of a single process.

Statistics are over videos: a video's repeats (several shuffles of one clip) are not independent,
so bootstrap intervals resample videos, and model comparisons pair the same videos.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import platform
import shlex
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from analysis.parts import PARTS_DIR, Parts, on_main, write_atomic
from analysis.perturb import PERTURBATIONS, FrameOrder, frame_orders
from workbench import distributed
from workbench.datasets import VideoDataset, open_dataset
from workbench.device import autocast, model_device, peak_memory, prepare_model
from workbench.models import file_sha256
from workbench.models.spec import ModelSpec
from workbench.video import VideoError, load_clips, read_frames, sample_indices, video_info

DEFAULT_PERTURBATIONS = PERTURBATIONS
RESULTS_FILE = "results.parquet"
SUMMARY_FILE = "summary.csv"
SENSITIVITY_FILE = "class_sensitivity.csv"
COMPARISONS_FILE = "comparisons.csv"
RUN_FILE = "run.json"
NO_LEVEL = -1.0  # `level` of rows outside the sweep (NaN would drop out of pandas group-bys)

COMPARISON_COLUMNS = ["perturbation", "model_a", "model_b", "videos", "sensitivity_a", "sensitivity_b",
                      "difference", "ci_low", "ci_high", "p_value", "only_a_flips", "only_b_flips",
                      "mcnemar_p"]

ProgressFn = Callable[[int, int], None]


class ExperimentError(ValueError):
    """The experiment cannot run as asked (classes do not fit, run directory holds another run)."""


@dataclass
class ExperimentConfig:
    """What to perturb and how; everything that changes results is in here (and in run.json)."""

    perturbations: tuple[str, ...] = DEFAULT_PERTURBATIONS
    permutations: int = 5  # repeats of each random perturbation per video
    seed: int = 0
    block: int = 2  # block_shuffle block length in frames
    levels: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # sweep Kendall-tau distances
    batch_size: int = 64
    # Videos per part file, the unit of resumption. Batches do not cross chunks, so small chunks
    # leave many part-filled batches (measured: 8 videos per chunk cost ~15% more forward time).
    chunk_videos: int = 32
    bootstrap: int = 2000

    def __post_init__(self) -> None:
        unknown = [p for p in self.perturbations if p not in PERTURBATIONS]
        if unknown:
            raise ExperimentError(f"unknown perturbations {unknown}; known: {', '.join(PERTURBATIONS)}")
        # The original order is always run: flips and KL are measured against it.
        self.perturbations = tuple(p for p in PERTURBATIONS if p in self.perturbations or p == "original")
        self.levels = tuple(float(level) for level in self.levels)
        if self.permutations < 1 or self.batch_size < 1 or self.chunk_videos < 1 or self.bootstrap < 1:
            raise ExperimentError("permutations, batch_size, chunk_videos and bootstrap must be >= 1")
        if self.block < 1:
            raise ExperimentError(f"block must be >= 1, got {self.block}")
        if any(not 0.0 <= level <= 1.0 for level in self.levels):
            raise ExperimentError(f"sweep levels must be in [0, 1], got {list(self.levels)}")

    def key(self) -> dict[str, Any]:
        """Every field: chunking defines the part files and batching can change float rounding, so a
        resumed run must use the same values to be identical to an uninterrupted one."""
        data = asdict(self)
        data["perturbations"] = list(self.perturbations)
        data["levels"] = list(self.levels)
        return data


@dataclass
class ExperimentResult:
    """A finished run: the per-observation table and what is computed from it."""

    results: pd.DataFrame
    summary: pd.DataFrame
    class_sensitivity: pd.DataFrame
    comparisons: pd.DataFrame
    run: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None


@dataclass
class _Item:
    path: str
    name: str  # shown and stored: path relative to the dataset root
    label_name: str | None


# ---------------------------------------------------------------------------------------------
# Classes: dataset labels in each model's terms


def _class_table(spec: ModelSpec, class_info: list[dict[str, Any]] | None) -> tuple[list[int], list[str]]:
    """Mirror index (-1 none) and kind per model class, from the spec or else the dataset's classes.json."""
    info = {entry["name"]: entry for entry in class_info or []}
    mirrors, kinds = [], []
    for index, name in enumerate(spec.class_names):
        mirror = spec.mirror_index(index)
        if mirror is None and not spec.mirror_of:
            other = info.get(name, {}).get("mirror_of")
            mirror = spec.class_names.index(other) if other in spec.class_names else None
        mirrors.append(-1 if mirror is None else mirror)
        kinds.append(spec.class_kinds.get(name) or info.get(name, {}).get("kind") or "unknown")
    return mirrors, kinds


def _model_label(spec: ModelSpec, label_name: str, dataset_classes: Sequence[str]) -> int:
    """The model's index of a dataset class (by name; numeric class names by index)."""
    if label_name in spec.class_names:
        return spec.class_names.index(label_name)
    if label_name.isdigit() and int(label_name) < spec.num_classes:
        return int(label_name)
    raise ExperimentError(
        f"dataset class {label_name!r} is not a class of the {spec.scheme} model "
        f"({spec.num_classes} classes: {', '.join(spec.class_names[:6])}...)"
    )


# ---------------------------------------------------------------------------------------------
# Decoding: one decode per video, one preprocessed clip per distinct input spec


def _input_key(spec: ModelSpec) -> tuple:
    """Models with equal keys see the same preprocessed clip."""
    return (spec.frames, spec.input_size, spec.resize_to, spec.mean, spec.std, spec.channel_order,
            spec.value_scale)


def sampled_frames(path: str, spec: ModelSpec, max_side: int = 160) -> torch.Tensor:
    """The uint8 frames (T,H,W,3) a model with `spec` samples from a video (for display)."""
    info = video_info(path)
    return read_frames(path, sample_indices(info["num_frames"], spec.frames), max_side=max_side)


def video_orders(name: str, frames: int, config: ExperimentConfig) -> list[FrameOrder]:
    """The perturbed orders of one video: seeded by the run seed, the video's name and T."""
    rng = np.random.default_rng([config.seed, zlib.crc32(name.encode()), frames])
    return frame_orders(frames, config.perturbations, config.permutations, rng,
                        block=config.block, levels=config.levels)


# ---------------------------------------------------------------------------------------------
# Scoring


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run small tensor ops (preprocessing one clip) on one torch thread, then restore.

    On a busy CPU, several threads on a tiny op spend their time waiting on each other: measured
    here, preprocessing an 8-frame 48 px clip took 86 ms on 2 threads and 2 ms on 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class _Model:
    label: str
    model: torch.nn.Module
    mirrors: list[int]
    kinds: list[str]


class _DecodeDataset(torch.utils.data.Dataset):
    """Decodes videos for the runner; a torch Dataset so DataLoader workers can decode ahead."""

    def __init__(self, items: Sequence[tuple[int, _Item]], specs: Sequence[ModelSpec]) -> None:
        self.items = list(items)
        self.specs = list(specs)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> tuple[int, list[torch.Tensor] | None, str | None]:
        index, item = self.items[position]
        try:
            return index, load_clips(item.path, self.specs), None
        except VideoError as err:  # reported by the main process, in video order
            return index, None, str(err)


def _decoded(
    items: Sequence[tuple[int, _Item]], specs: Sequence[ModelSpec], workers: int, pin: bool
) -> Iterator[tuple[int, list[torch.Tensor] | None, str | None]]:
    """(video index, clips per spec or None, error or None) for each item, in the order given.

    With workers, decoding runs in DataLoader processes ahead of the model (each keeps 2 videos in
    flight): the runner holds at most a chunk plus those, never the dataset's decoded videos."""
    dataset = _DecodeDataset(items, specs)
    if workers <= 0:
        for position in range(len(dataset)):
            with _one_thread():  # only around decoding: the model below keeps its threads
                value = dataset[position]
            yield value
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                                         pin_memory=pin, prefetch_factor=2)
    yield from loader


def _score_chunk(
    decoded: list[tuple[int, _Item, list[torch.Tensor]]],
    groups: list[tuple[ModelSpec, list[_Model]]],
    config: ExperimentConfig,
    dataset_classes: Sequence[str],
    device: torch.device,
    amp: torch.dtype | None = None,
) -> pd.DataFrame:
    """Rows for a chunk of decoded videos: batch all perturbed clips of them, score every model."""
    frames_out = []
    for g, (spec, members) in enumerate(groups):
        if not decoded:
            break
        # (V, T, 3, S, S): small (one clip per video), so it moves to the model's device once
        clips = torch.stack([clips[g] for _, _, clips in decoded]).to(device, non_blocking=True)
        orders = [video_orders(item.name, spec.frames, config) for _, item, _ in decoded]
        video_pos = np.concatenate([np.full(len(o), v) for v, o in enumerate(orders)])
        flat = [o for per_video in orders for o in per_video]
        order_index = torch.tensor([o.order for o in flat], dtype=torch.int64, device=device)
        positions = torch.from_numpy(video_pos).to(device)
        logp: dict[str, list[torch.Tensor]] = {m.label: [] for m in members}
        for start in range(0, len(flat), config.batch_size):
            stop = start + config.batch_size
            # Gather only this batch of perturbed clips: the full stack can be GBs at 224 px.
            batch = clips[positions[start:stop, None], order_index[start:stop]]
            for member in members:
                with autocast(device, amp):
                    logits = member.model(batch)
                logp[member.label].append(torch.log_softmax(logits.float(), dim=1).cpu())
        for member in members:
            # the member's own spec: models in a group share the input, not classes or scheme
            frames_out.append(_rows(decoded, orders, video_pos, flat, torch.cat(logp[member.label]),
                                    member, member.model.spec, dataset_classes))
    return pd.concat(frames_out, ignore_index=True) if frames_out else _empty_rows()


def _rows(
    decoded: list[tuple[int, _Item, list[torch.Tensor]]],
    orders: list[list[FrameOrder]],
    video_pos: np.ndarray,
    flat: list[FrameOrder],
    logp: torch.Tensor,
    member: _Model,
    spec: ModelSpec,
    dataset_classes: Sequence[str],
) -> pd.DataFrame:
    """One model's rows for the decoded videos of a chunk."""
    labels = np.array([_model_label(spec, item.label_name or "", dataset_classes) for _, item, _ in decoded])
    label = labels[video_pos]
    mirror = np.array(member.mirrors)[label]
    probs = logp.exp()
    prediction = logp.argmax(1).numpy()
    rows_n = len(flat)
    # The original clip of each video is the first order listed for it (registry order).
    first = np.concatenate([[0], np.cumsum([len(o) for o in orders])[:-1]])[video_pos]
    orig_logp = logp[torch.from_numpy(first)]
    kl = (orig_logp.exp() * (orig_logp - logp)).sum(1).clamp_min(0).numpy()
    p_mirror = np.where(mirror >= 0, probs[np.arange(rows_n), np.maximum(mirror, 0)].numpy(), np.nan)
    return pd.DataFrame({
        "video_index": np.array([index for index, _, _ in decoded])[video_pos],
        "video": [decoded[v][1].name for v in video_pos],
        "class_name": [decoded[v][1].label_name for v in video_pos],
        "class_kind": np.array(member.kinds)[label],
        "model": member.label,
        "scheme": spec.scheme,
        "perturbation": [o.perturbation for o in flat],
        "repeat": np.array([o.repeat for o in flat], dtype=np.int64),
        "level": np.array([NO_LEVEL if o.level is None else o.level for o in flat], dtype=np.float64),
        "order": [o.text for o in flat],
        "label": label.astype(np.int64),
        "prediction": prediction.astype(np.int64),
        "prediction_name": np.array(spec.class_names)[prediction],
        "correct": prediction == label,
        "p_true": probs[np.arange(rows_n), label].numpy().astype(np.float64),
        "mirror": mirror.astype(np.int64),
        "p_mirror": p_mirror.astype(np.float64),
        "predicted_mirror": (mirror >= 0) & (prediction == mirror),
        "kl": kl.astype(np.float64),
        "flip": prediction != prediction[first],
    })


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame({
        "video_index": pd.Series(dtype="int64"), "video": pd.Series(dtype=str),
        "class_name": pd.Series(dtype=str), "class_kind": pd.Series(dtype=str),
        "model": pd.Series(dtype=str), "scheme": pd.Series(dtype=str),
        "perturbation": pd.Series(dtype=str), "repeat": pd.Series(dtype="int64"),
        "level": pd.Series(dtype="float64"), "order": pd.Series(dtype=str),
        "label": pd.Series(dtype="int64"), "prediction": pd.Series(dtype="int64"),
        "prediction_name": pd.Series(dtype=str), "correct": pd.Series(dtype=bool),
        "p_true": pd.Series(dtype="float64"), "mirror": pd.Series(dtype="int64"),
        "p_mirror": pd.Series(dtype="float64"), "predicted_mirror": pd.Series(dtype=bool),
        "kl": pd.Series(dtype="float64"), "flip": pd.Series(dtype=bool),
    })


# ---------------------------------------------------------------------------------------------
# The runner


def _items(dataset: VideoDataset) -> list[_Item]:
    root = Path(dataset.root) if dataset.root is not None else None
    result = []
    for item in dataset.items:
        path = Path(item.path)
        name = str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)
        result.append(_Item(str(path), name, item.label_name))
    return result


def dataset_fingerprint(dataset: VideoDataset) -> str:
    """sha256 over (relative path, class, size) of every video: changes when the data does."""
    digest = hashlib.sha256()
    for item in _items(dataset):
        path = Path(item.path)
        size = path.stat().st_size if path.is_file() else len(list(path.iterdir())) if path.is_dir() else -1
        digest.update(f"{item.name}\t{item.label_name}\t{size}\n".encode())
    return digest.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of a model's weights (for models that did not come from a file)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("torch", "captum", "decord", "numpy", "pandas", "pyarrow", "gate-shift-workbench"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    from workbench import __version__

    versions["workbench"] = __version__
    return versions


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def run_experiment(
    models: Mapping[str, torch.nn.Module],
    data: str | Path | VideoDataset,
    config: ExperimentConfig | None = None,
    out: str | Path | None = None,
    *,
    checkpoints: Mapping[str, str | Path] | None = None,
    progress: ProgressFn | None = None,
    show_progress: bool = False,
    command: str | None = None,
    warn: Callable[[str], None] | None = None,
    device: torch.device | str | None = None,
    amp: torch.dtype | None = None,
    workers: int = 0,
) -> ExperimentResult:
    """Run every perturbation of every video through every model; resumable when `out` is given.

    `device` (default: where the first model is) gets every model and clip; `amp` is an autocast
    dtype for CUDA; `workers` > 0 decodes in that many DataLoader processes (results do not change).
    Under torch.distributed (e.g. torchrun) each rank scores its share of the chunks and writes their
    part files, and rank 0 merges them into the same results a single process gives; every rank
    returns the merged result."""
    config = config or ExperimentConfig()
    if not models:
        raise ExperimentError("no models to test")
    context = distributed.current()
    if context.distributed and out is None:
        raise ExperimentError("a distributed run needs a run directory: ranks share their parts through it")
    device = torch.device(device) if device is not None else model_device(next(iter(models.values())))
    dataset = data if isinstance(data, VideoDataset) else open_dataset(data)
    items = _items(dataset)
    members_by_key: dict[tuple, tuple[ModelSpec, list[_Model]]] = {}
    for label, model in models.items():
        spec = model.spec
        for class_name in dataset.classes:
            _model_label(spec, class_name, dataset.classes)  # fail before any work
        mirrors, kinds = _class_table(spec, dataset.class_info)
        member = _Model(label, prepare_model(model, device), mirrors, kinds)
        members_by_key.setdefault(_input_key(spec), (spec, []))[1].append(member)
    groups = list(members_by_key.values())
    checkpoints = dict(checkpoints or {})
    run = {
        "experiment": {
            "config": config.key(),
            "models": [
                {"label": label, "scheme": model.spec.scheme,
                 "checkpoint": str(checkpoints[label]) if label in checkpoints else None,
                 "sha256": file_sha256(checkpoints[label]) if label in checkpoints
                 else model_fingerprint(model)}
                for label, model in models.items()
            ],
            "dataset": {"path": str(data if not isinstance(data, VideoDataset) else dataset.root),
                        "fingerprint": dataset_fingerprint(dataset), "videos": len(items),
                        "classes": list(dataset.classes)},
        },
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "seeds": {"perturbation": config.seed, "bootstrap": config.seed},
        "versions": _versions(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running",
    }
    amp_name = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(amp, str(amp))
    if device.type != "cpu" or amp is not None:
        # GPU kernels and autocast round differently from the CPU: a resumed run must not mix them.
        # (Absent on the CPU, so run directories made before devices existed still resume.)
        run["experiment"]["execution"] = {"device": device.type, "amp": amp_name}
    # How the work was spread does not change the rows, so it is provenance, not identity.
    run["execution"] = {"device": str(device), "amp": amp_name, "world_size": context.world_size,
                        "workers": workers}
    run_dir = Path(out) if out is not None else None
    if run_dir is not None:
        run = on_main(lambda: _open_run_dir(run_dir, run), ExperimentError) or run
    numbered = list(enumerate(items))  # once: a 25k-video list is not rebuilt per chunk
    chunks = [numbered[i : i + config.chunk_videos] for i in range(0, len(items), config.chunk_videos)]
    mine = distributed.shard(len(chunks), context)
    parts = Parts(run_dir)
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        if warn is not None:
            warn(message)

    pending = parts.pending(mine)
    total_videos = sum(len(chunks[n]) for n in mine)
    done_videos = total_videos - sum(len(chunks[n]) for n in pending)
    desc = "temporal-test" if not context.distributed else f"temporal-test rank {context.rank}"
    bar = tqdm(total=total_videos, initial=done_videos, unit="video", desc=desc,
               disable=not show_progress or not context.is_main, dynamic_ncols=True)
    if progress is not None:
        progress(done_videos, total_videos)
    queue = [entry for n in pending for entry in chunks[n]]
    stream = _decoded(queue, [spec for spec, _ in groups], workers, pin=device.type == "cuda")
    try:
        with torch.inference_mode():
            for number in pending:
                decoded = []
                for index, item in chunks[number]:
                    got, clips, error = next(stream)
                    assert got == index, "decoded videos came back out of order"
                    if clips is None:
                        note(f"skipped {item.name}: {error}")
                    else:
                        decoded.append((index, item, clips))
                parts.save(number, _score_chunk(decoded, groups, config, dataset.classes, device, amp))
                del decoded
                done_videos += len(chunks[number])
                bar.update(len(chunks[number]))
                if progress is not None:
                    progress(done_videos, total_videos)
    finally:
        stream.close()  # stops DataLoader workers if the run ends early
        bar.close()
    # collectives: also the point where every rank has written its parts
    all_notes = [message for rank_notes in distributed.gather(notes) for message in rank_notes]
    memory = distributed.gather({"rank": context.rank, **peak_memory(device)})
    if context.is_main:
        finished = parts.read(len(chunks))
        results = pd.concat(finished, ignore_index=True) if finished else _empty_rows()
        del finished
        results = results.astype(_empty_rows().dtypes.to_dict())
        analysed = analyse(results, bootstrap=config.bootstrap, seed=config.seed)
        scored = set(results["video_index"].unique().tolist())
        run["skipped_videos"] = [item.name for index, item in enumerate(items) if index not in scored]
        run["notes"] = all_notes
        run["rows"] = len(results)
        memory[0] = {"rank": 0, **peak_memory(device)}  # rank 0 again: the merge is its peak
        run["peak_memory"] = {"max_rss_mib": max(m["max_rss_mib"] for m in memory), "ranks": memory}
        if device.type == "cuda":
            run["peak_memory"]["cuda_max_allocated_mib"] = max(m["cuda_max_allocated_mib"] for m in memory)
        run["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        run["status"] = "complete"
        analysed.run = run
        if run_dir is not None:
            write_run(analysed, run_dir)
    distributed.barrier()  # the others read what rank 0 wrote
    if not context.is_main:
        assert run_dir is not None
        return load_run(run_dir)
    return analysed


def _open_run_dir(run_dir: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Create the run directory, or check an existing one holds the same experiment (to resume)."""
    (run_dir / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    existing = run_dir / RUN_FILE
    if existing.is_file():
        previous = json.loads(existing.read_text())
        if previous.get("experiment") != run["experiment"]:
            raise ExperimentError(
                f"{run_dir} holds a different experiment (other models, data or settings); "
                f"choose a new --out or delete it"
            )
        run["started"] = previous.get("started", run["started"])
        run["resumed"] = previous.get("resumed", 0) + (previous.get("status") != "complete")
    _write_json(existing, run)
    return run


def write_run(result: ExperimentResult, run_dir: str | Path) -> None:
    """Write results.parquet, summary.csv, class_sensitivity.csv, comparisons.csv and run.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / RESULTS_FILE, lambda tmp: result.results.to_parquet(tmp, index=False))
    write_atomic(run_dir / SUMMARY_FILE, lambda tmp: result.summary.to_csv(tmp, index=False))
    write_atomic(run_dir / SENSITIVITY_FILE, lambda tmp: result.class_sensitivity.to_csv(tmp, index=False))
    write_atomic(run_dir / COMPARISONS_FILE, lambda tmp: result.comparisons.to_csv(tmp, index=False))
    _write_json(run_dir / RUN_FILE, result.run)
    result.run_dir = run_dir


def load_run(run_dir: str | Path) -> ExperimentResult:
    """A finished run read back from its directory."""
    run_dir = Path(run_dir)

    def table(name: str) -> pd.DataFrame:
        try:
            return pd.read_csv(run_dir / name)
        except pd.errors.EmptyDataError:  # an empty table (e.g. no videos could be decoded)
            return pd.DataFrame()

    return ExperimentResult(
        results=pd.read_parquet(run_dir / RESULTS_FILE),
        summary=table(SUMMARY_FILE),
        class_sensitivity=table(SENSITIVITY_FILE),
        comparisons=table(COMPARISONS_FILE),
        run=json.loads((run_dir / RUN_FILE).read_text()),
        run_dir=run_dir,
    )


# ---------------------------------------------------------------------------------------------
# Statistics


def bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `resamples` bootstrap resamples of `values` (resampling rows)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.full(resamples, np.nan)
    picks = rng.integers(0, values.size, size=(resamples, values.size))
    return values[picks].mean(axis=1)


def bootstrap_interval(
    values: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`."""
    means = bootstrap_means(values, resamples, np.random.default_rng(seed))
    if np.isnan(means).all():
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def sign_flip_p(differences: np.ndarray, resamples: int = 2000, seed: int = 0) -> float:
    """Two-sided paired permutation p-value that the mean difference is 0 (random sign flips)."""
    diffs = np.asarray(differences, dtype=np.float64)
    if diffs.size == 0:
        return float("nan")
    observed = abs(diffs.mean())
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(resamples, diffs.size))
    extreme = (np.abs((signs * diffs).mean(axis=1)) >= observed - 1e-12).sum()
    return float((extreme + 1) / (resamples + 1))


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts (binomial, p = 1/2)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def _per_video(results: pd.DataFrame, column: str) -> pd.Series:
    """Mean of `column` per (model, perturbation, level, video): a video's repeats averaged."""
    keys = ["model", "perturbation", "level", "video_index"]
    return results.groupby(keys, sort=False)[column].mean()


def summarize(results: pd.DataFrame, bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per model x perturbation (x sweep level): accuracy with a 95% bootstrap interval over videos,
    change vs the original order (paired interval), flip rate, mean KL, mirror rate, by class kind."""
    if results.empty:
        return pd.DataFrame()
    correct = _per_video(results.assign(correct=results["correct"].astype(float)), "correct").sort_index()
    original = correct.xs("original", level="perturbation").droplevel("level")
    originals = results[results["perturbation"] == "original"]
    original_by_kind = originals.groupby(["model", "class_kind"])["correct"].mean()
    rows = []
    groups = results.groupby(["model", "perturbation", "level"], sort=False)
    for (model, perturbation, level), frame in groups:
        videos = correct.loc[(model, perturbation, level)]
        base = original.loc[model].reindex(videos.index)
        change = videos - base
        rng_seed = seed + zlib.crc32(f"{model}|{perturbation}|{level}".encode())
        low, high = bootstrap_interval(videos.to_numpy(), bootstrap, rng_seed)
        change_low, change_high = bootstrap_interval(change.to_numpy(), bootstrap, rng_seed + 1)
        with_mirror = frame["mirror"] >= 0
        row = {
            "model": model,
            "scheme": frame["scheme"].iloc[0],
            "perturbation": perturbation,
            "level": level,
            "videos": int(videos.size),
            "clips": int(len(frame)),
            "accuracy": float(videos.mean()),
            "ci_low": low,
            "ci_high": high,
            "change": float(change.mean()),
            "change_low": change_low,
            "change_high": change_high,
            "flip_rate": float(frame["flip"].mean()),
            "mean_kl": float(frame["kl"].mean()),
            "p_true": float(frame["p_true"].mean()),
            "mirror_rate": float(frame.loc[with_mirror, "predicted_mirror"].mean()) if with_mirror.any()
            else float("nan"),
        }
        by_kind = frame.groupby("class_kind")["correct"].mean()
        for kind in ("temporal", "static"):
            accuracy = float(by_kind.get(kind, float("nan")))
            row[f"{kind}_accuracy"] = accuracy
            row[f"{kind}_change"] = accuracy - float(original_by_kind.get((model, kind), float("nan")))
        rows.append(row)
    return pd.DataFrame(rows)


def class_sensitivity(results: pd.DataFrame) -> pd.DataFrame:
    """Per model x class x perturbation (sweep levels pooled): accuracy, change vs original,
    flip rate, mean KL and how often the mirror class is predicted."""
    if results.empty:
        return pd.DataFrame()
    keys = ["model", "class_name", "perturbation"]
    grouped = results.groupby(keys, sort=False)
    table = grouped.agg(
        kind=("class_kind", "first"),
        videos=("video_index", "nunique"),
        accuracy=("correct", "mean"),
        flip_rate=("flip", "mean"),
        mean_kl=("kl", "mean"),
        mirror_rate=("predicted_mirror", "mean"),
    ).reset_index()
    original = table[table["perturbation"] == "original"].set_index(["model", "class_name"])["accuracy"]
    base = original.reindex(pd.MultiIndex.from_frame(table[["model", "class_name"]])).to_numpy()
    table["original_accuracy"] = base
    table["change"] = table["accuracy"] - base
    return table


def compare_models(results: pd.DataFrame, bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Paired comparison of order sensitivity between every two models on the same videos.

    Sensitivity of a video = original correct (0/1) - mean correct under the perturbation. The
    difference (model_a - model_b) gets a bootstrap interval over videos and a sign-flip p-value.
    McNemar compares how often each model's top-1 answer flips on the same videos (draw 0): videos
    where only one of the two flips are the evidence."""
    if results.empty:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    models = list(dict.fromkeys(results["model"]))
    orig = results[results["perturbation"] == "original"].set_index(["model", "video_index"])["correct"]
    pert = results[(results["perturbation"] != "original")
                   & ~((results["perturbation"] == "sweep") & (results["level"] == 0.0))]
    correct = pert.assign(correct=pert["correct"].astype(float)).groupby(
        ["model", "perturbation", "video_index"])["correct"].mean()
    flips = pert[pert["repeat"] == 0].groupby(["model", "perturbation", "video_index"])["flip"].first()
    rows = []
    for perturbation in dict.fromkeys(pert["perturbation"]):
        for model_a, model_b in itertools.combinations(models, 2):
            try:
                a = correct.loc[(model_a, perturbation)]
                b = correct.loc[(model_b, perturbation)]
            except KeyError:
                continue
            videos = a.index.intersection(b.index)
            sens_a = orig.loc[model_a].reindex(videos).astype(float) - a.reindex(videos)
            sens_b = orig.loc[model_b].reindex(videos).astype(float) - b.reindex(videos)
            diff = (sens_a - sens_b).to_numpy()
            rng_seed = seed + zlib.crc32(f"{model_a}|{model_b}|{perturbation}".encode())
            low, high = bootstrap_interval(diff, bootstrap, rng_seed)
            flips_a = flips.loc[(model_a, perturbation)].reindex(videos).astype(bool)
            flips_b = flips.loc[(model_b, perturbation)].reindex(videos).astype(bool)
            only_a, only_b = int((flips_a & ~flips_b).sum()), int((~flips_a & flips_b).sum())
            rows.append({
                "perturbation": perturbation, "model_a": model_a, "model_b": model_b,
                "videos": int(len(videos)),
                "sensitivity_a": float(sens_a.mean()), "sensitivity_b": float(sens_b.mean()),
                "difference": float(diff.mean()), "ci_low": low, "ci_high": high,
                "p_value": sign_flip_p(diff, bootstrap, rng_seed + 1),
                "only_a_flips": only_a, "only_b_flips": only_b,
                "mcnemar_p": mcnemar_p(only_a, only_b),
            })
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def sweep_curve(results: pd.DataFrame) -> pd.DataFrame:
    """Sweep accuracy per model and Kendall-tau distance (the distance reached for the clip length)."""
    sweep = results[results["perturbation"] == "sweep"]
    if sweep.empty:
        return pd.DataFrame(columns=["model", "level", "accuracy", "videos"])
    return (sweep.groupby(["model", "level"], sort=False)
            .agg(accuracy=("correct", "mean"), videos=("video_index", "nunique"))
            .reset_index().sort_values(["model", "level"], kind="stable"))


def reverse_confusion(results: pd.DataFrame, model: str) -> pd.DataFrame:
    """Counts of true class (rows) x predicted class (columns) under time reversal for one model."""
    rows = results[(results["model"] == model) & (results["perturbation"] == "reverse")]
    return pd.crosstab(rows["class_name"], rows["prediction_name"])


def analyse(results: pd.DataFrame, bootstrap: int = 2000, seed: int = 0) -> ExperimentResult:
    """Summary, class sensitivity and model comparisons computed from a results table."""
    return ExperimentResult(
        results=results,
        summary=summarize(results, bootstrap, seed),
        class_sensitivity=class_sensitivity(results),
        comparisons=compare_models(results, bootstrap, seed),
    )


# ---------------------------------------------------------------------------------------------
# One clip, for looking at


@dataclass
class ClipOrders:
    """One video under every perturbation: the frames each model sees and what each model says."""

    frames: torch.Tensor  # uint8 (T,H,W,3) sampled for the first model's spec
    orders: list[FrameOrder]
    predictions: pd.DataFrame  # model, perturbation, repeat, level, order, prediction, probability


def clip_orders(
    models: Mapping[str, torch.nn.Module],
    video: str | Path,
    config: ExperimentConfig | None = None,
    true_class: str | None = None,
) -> ClipOrders:
    """Every model's prediction on one video under every perturbed order (seeded by its file name)."""
    config = config or ExperimentConfig()
    if not models:
        raise ExperimentError("no models to test")
    path = str(video)
    name = Path(path).name
    rows = []
    with _one_thread():
        clips = load_clips(path, [model.spec for model in models.values()])  # the video decoded once
    with torch.inference_mode():
        for (label, model), clip in zip(models.items(), clips):
            spec = model.spec
            model.eval()
            orders = video_orders(name, spec.frames, config)
            device = model_device(model)
            index = torch.tensor([o.order for o in orders], dtype=torch.int64, device=device)
            clip = clip.to(device)
            logp = torch.cat([torch.log_softmax(model(clip[index[i : i + config.batch_size]]).float(), 1)
                              for i in range(0, len(orders), config.batch_size)]).cpu()
            probs = logp.exp()
            for row, order in enumerate(orders):
                predicted = int(probs[row].argmax())
                truth = spec.class_names.index(true_class) if true_class in spec.class_names else None
                rows.append({
                    "model": label, "perturbation": order.perturbation, "repeat": order.repeat,
                    "level": order.level, "order": order.text,
                    "prediction": spec.class_names[predicted], "probability": float(probs[row, predicted]),
                    "p_true": float(probs[row, truth]) if truth is not None else float("nan"),
                    "correct": predicted == truth if truth is not None else None,
                })
    first_spec = next(iter(models.values())).spec
    return ClipOrders(
        frames=sampled_frames(path, first_spec),
        orders=video_orders(name, first_spec.frames, config),
        predictions=pd.DataFrame(rows),
    )
