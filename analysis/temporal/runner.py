"""The frame-order experiment runner: every perturbed order of every video through every model.

`run_experiment` decodes each video once, builds all perturbed clips of it (analysis.perturb), runs
them through the models in batches under inference mode, and returns one row per video x model x
perturbation x repeat. With a run directory each finished chunk of videos is kept as its own part
file, so a killed run continues where it stopped; at the end the tables and run.json are written.
Under torch.distributed (torchrun) the chunks are shared round robin between the ranks and rank 0
merges the part files in chunk order, so the rows are those of a single process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from workbench import distributed, rundir
from workbench.datasets import VideoDataset, open_dataset, skipped_record, unreadable_reason
from workbench.device import model_device, peak_memory
from workbench.errors import VideoError
from workbench.models.memory import Budget, measure_footprint
from workbench.models.spec import ModelSpec

from .classes import class_table, model_label
from .config import ExperimentConfig, ExperimentError, ExperimentResult
from .decoding import Item, decoded, input_key
from .scoring import Decoded, Member, empty_rows, score_chunk
from .stats import analyse
from .store import load_result, write_result

__all__ = ["dataset_items", "run_experiment"]

ProgressFn = Callable[[int, int], None]
AMP_NAMES = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}


def dataset_items(dataset: VideoDataset) -> list[Item]:
    """The dataset's videos, named by their path relative to its root."""
    return [Item(item.path, dataset.relative_name(item), item.label_name) for item in dataset.items]


def _groups(
    models: Mapping[str, torch.nn.Module], dataset: VideoDataset, device: torch.device
) -> list[tuple[ModelSpec, list[Member]]]:
    """The models grouped by the input they need (one preprocessed clip per group)."""
    groups: dict[tuple, tuple[ModelSpec, list[Member]]] = {}
    for label, model in models.items():
        spec = model.spec
        for class_name in dataset.classes:
            model_label(spec, class_name, dataset.classes)  # fail before any work
        if model_device(model) != device:
            raise ExperimentError(f"model {label!r} is on {model_device(model)}, the run on {device}: "
                                  "move it first (workbench.device.prepare_model)")
        mirrors, kinds = class_table(spec, dataset.class_info)
        groups.setdefault(input_key(spec), (spec, []))[1].append(Member(label, model, mirrors, kinds))
    return list(groups.values())


def plan_batches(
    groups: list[tuple[ModelSpec, list[Member]]], config: ExperimentConfig,
    memory: Budget | int | str | None,
) -> list[int]:
    """Clips per pass of each input group under the budget: a pass holds one batch of perturbed clips
    and one model's activations; the decoded chunk (and the one decoded ahead) are held besides."""
    budget = Budget.of(memory)
    footprints = [[measure_footprint(m.model, (spec.frames, 3, spec.input_size, spec.input_size))
                   for m in members] for spec, members in groups]
    chunk = 2 * config.chunk_videos * sum(f[0].clip_bytes for f in footprints)
    return [min(budget.batch(f, False, config.batch_size, reserve=chunk, what="temporal-test")
                for f in group) for group in footprints]


def _new_run(
    models: Mapping[str, torch.nn.Module], dataset: VideoDataset, data: Any, config: ExperimentConfig,
    checkpoints: Mapping[str, str | Path], command: str | None, device: torch.device,
    amp: torch.dtype | None, workers: int,
) -> dict[str, Any]:
    """The run.json record of an experiment; its identity decides whether a run directory resumes."""
    records = [rundir.model_record(label, model, checkpoints.get(label)) for label, model in models.items()]
    path = data if not isinstance(data, VideoDataset) else dataset.root
    dataset_info = rundir.dataset_record(dataset, path)
    identity: dict[str, Any] = {
        "config": config.key(),
        "models": [{"label": r["label"], "scheme": r["scheme"], "checkpoint": r["path"],
                    "sha256": r["sha256"]} for r in records],
        "dataset": dataset_info,
    }
    if device.type != "cpu" or amp is not None:
        # GPU kernels and autocast round differently from the CPU: a resumed run must not mix them.
        # (Absent on the CPU, so run directories made before devices existed still resume.)
        identity["execution"] = {"device": device.type, "amp": AMP_NAMES.get(amp, str(amp))}
    run = rundir.new_run(
        "temporal-test", command or "analysis.temporal.run_experiment", models=records, dataset=dataset_info,
        seeds={"perturbation": config.seed, "bootstrap": config.seed}, options=config.key(),
        identity=identity)
    context = distributed.current()
    # How the work was spread does not change the rows, so it is provenance, not identity.
    run["execution"] = {"device": str(device), "amp": AMP_NAMES.get(amp, str(amp)),
                        "world_size": context.world_size, "workers": workers}
    return run


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
    strict: bool = False,
    memory: Budget | int | str | None = None,
) -> ExperimentResult:
    """Run every perturbation of every video through every model; resumable when `out` is given.

    Models run where they are (`device`, default: where the first model is, must agree); `amp` is an
    autocast dtype for CUDA; `workers` > 0 decodes in that many DataLoader processes (results do not
    change). The models are only run, never changed. A video that cannot be decoded is skipped and
    listed with its reason (run.json `skipped`), or stops the run with `strict`. Under
    torch.distributed each rank scores its share of the chunks and every rank returns the merged result.
    Clips per pass: config.batch_size at most, fewer when the `memory` budget holds fewer
    (workbench.models.memory); MemoryBudgetError before any work when not one clip fits."""
    config = config or ExperimentConfig()
    if not models:
        raise ExperimentError("no models to test")
    context = distributed.current()
    if context.distributed and out is None:
        raise ExperimentError("a distributed run needs a run directory: ranks share their parts through it")
    device = torch.device(device) if device is not None else model_device(next(iter(models.values())))
    dataset = data if isinstance(data, VideoDataset) else open_dataset(data)
    items = dataset_items(dataset)
    groups = _groups(models, dataset, device)
    batch_sizes = plan_batches(groups, config, memory)
    run = _new_run(models, dataset, data, config, dict(checkpoints or {}), command, device, amp, workers)
    run["execution"]["batch_sizes"] = batch_sizes
    run_dir = Path(out) if out is not None else None
    if run_dir is not None:
        run = rundir.on_main(lambda: rundir.open_run_dir(run_dir, run), ExperimentError) or run
    numbered = list(enumerate(items))  # once: a 25k-video list is not rebuilt per chunk
    chunks = [numbered[i : i + config.chunk_videos] for i in range(0, len(items), config.chunk_videos)]
    mine = distributed.shard(len(chunks), context)
    parts = rundir.Parts(run_dir)
    notes: list[str] = []
    reasons: dict[int, str] = {}  # video index -> why it was skipped, as decoding said it

    def note(message: str) -> None:
        notes.append(message)
        if warn is not None:
            warn(message)

    pending = parts.pending(mine)
    total = sum(len(chunks[n]) for n in mine)
    done = total - sum(len(chunks[n]) for n in pending)
    desc = "temporal-test" if not context.distributed else f"temporal-test rank {context.rank}"
    bar = tqdm(total=total, initial=done, unit="video", desc=desc,
               disable=not show_progress or not context.is_main, dynamic_ncols=True)
    if progress is not None:
        progress(done, total)
    queue = [entry for n in pending for entry in chunks[n]]
    stream = decoded(queue, [spec for spec, _ in groups], workers, pin=device.type == "cuda")
    try:
        with torch.inference_mode():
            for number in pending:

                def chunk(number: int = number) -> Iterator[Decoded]:
                    """The chunk's decoded videos as they come (scored while the next ones decode)."""
                    for index, item in chunks[number]:
                        got, clips, error = next(stream)
                        if got != index:
                            raise RuntimeError("decoded videos came back out of order")
                        if clips is None:
                            if strict:
                                raise VideoError(f"{error} (run without --strict to skip it)")
                            reasons[index] = str(error)
                            note(f"skipped {item.name}: {error}")
                        else:
                            yield index, item, clips

                scored = score_chunk(chunk(), groups, config, dataset.classes, device, amp, batch_sizes)
                parts.save(number, scored)
                del scored
                done += len(chunks[number])
                bar.update(len(chunks[number]))
                if progress is not None:
                    progress(done, total)
    finally:
        stream.close()  # stops DataLoader workers if the run ends early
        bar.close()
    return _merge(parts, chunks, items, run, notes, reasons, config, device, run_dir)


def _merge(
    parts: rundir.Parts, chunks: list, items: list[Item], run: dict[str, Any], notes: list[str],
    reasons: dict[int, str], config: ExperimentConfig, device: torch.device, run_dir: Path | None,
) -> ExperimentResult:
    """Rank 0 merges every rank's parts, computes the statistics and writes the run directory."""
    context = distributed.current()
    # collectives: also the point where every rank has written its parts
    all_notes = [message for rank_notes in distributed.gather(notes) for message in rank_notes]
    all_reasons = {k: v for rank_reasons in distributed.gather(reasons) for k, v in rank_reasons.items()}
    memory = distributed.gather({"rank": context.rank, **peak_memory(device)})
    result = None
    if context.is_main:
        finished = parts.read(len(chunks))
        results = pd.concat(finished, ignore_index=True) if finished else empty_rows()
        del finished
        results = results.astype(empty_rows().dtypes.to_dict())
        result = analyse(results, bootstrap=config.bootstrap, seed=config.seed)
        scored = set(results["video_index"].unique().tolist())
        memory[0] = {"rank": 0, **peak_memory(device)}  # rank 0 again: the merge is its peak
        peak = {"max_rss_mib": max(m["max_rss_mib"] for m in memory), "ranks": memory}
        if device.type == "cuda":
            peak["cuda_max_allocated_mib"] = max(m["cuda_max_allocated_mib"] for m in memory)
        # a video skipped by an earlier (resumed) run left no reason here: ask the decoder again
        skipped = [skipped_record(item.name, all_reasons.get(index) or unreadable_reason(item.path)
                                  or "no clip could be decoded")
                   for index, item in enumerate(items) if index not in scored]
        result.run = rundir.finish(
            run, skipped_videos=[s["video"] for s in skipped], skipped=skipped,
            notes=all_notes, rows=len(results), peak_memory=peak,
            outputs={"tables": ["results", "summary", "class_sensitivity", "comparisons"]})
        if run_dir is not None:
            write_result(result, run_dir)
    distributed.barrier()  # the others read what rank 0 wrote
    if result is None:
        assert run_dir is not None  # distributed runs always have one (checked at the start)
        return load_result(run_dir)
    return result
