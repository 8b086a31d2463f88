"""Throughput of the temporal-test runner against the bare batched forward pass, in one run.

Both sides score the same perturbed clips with the same models and batch size. "Bare" is only
`model(batch)` under inference_mode on clips decoded and perturbed beforehand (an upper bound);
the runner does everything: decode each video once, build the perturbed orders, forward, rows,
part files, statistics. Target (issue 16): runner >= 0.95x bare (videos decode in a thread while the
model runs, and each batch runs as soon as its videos are in). Rounds alternate the two sides so load from
other processes hits both alike; the figure is the median over rounds, in clips per wall-clock
second and per CPU-second of this process (the steadier one on a shared machine; use --threads 1
there, as threads waiting on each other burn CPU time).

    python benchmarks/temporal_throughput.py [--data DIR] [--schemes tsn gsm] [--rounds 3]

At real size (seeded, untrained models of the backbone; a 640x272 H.264 video written here, copied into
two class folders; the batch is the one the runner plans under its default memory budget, used by both):

    python benchmarks/temporal_throughput.py --backbone resnet50 --perturbations shuffle reverse freeze
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install
from analysis.temporal import ExperimentConfig, run_experiment, video_orders  # noqa: E402
from workbench import build_model, load_model  # noqa: E402
from workbench.datasets import open_dataset  # noqa: E402
from workbench.demo import demo_checkpoints, demo_probe_dir  # noqa: E402
from workbench.probe import class_kinds, class_names, mirror_table  # noqa: E402
from workbench.video import load_clips  # noqa: E402

TARGET = 0.95


def models_for(schemes: list[str]) -> dict[str, torch.nn.Module]:
    """Shipped demo models where they exist, else untrained demo-sized ones (same cost)."""
    shipped = demo_checkpoints()
    models = {}
    for scheme in schemes:
        if scheme in shipped:
            models[scheme] = load_model(shipped[scheme])
        else:
            models[scheme] = build_model(scheme, backbone="resnet-tiny", num_classes=len(class_names()),
                                         frames=8, input_size=48, class_names=class_names(),
                                         mirror_of=mirror_table(), class_kinds=class_kinds()).eval()
    return models


def real_size_models(schemes: list[str], backbone: str, size: int) -> dict[str, torch.nn.Module]:
    """Seeded, untrained two-class models of the backbone at 8 x size (the cost does not need weights)."""
    models = {}
    for scheme in schemes:
        torch.manual_seed(0)
        model = build_model(scheme, backbone=backbone, num_classes=2, frames=8, input_size=size)
        models[scheme] = model.eval()
    return models


def real_size_data(folder: Path, videos: int) -> Path:
    """`videos` copies of one 640x272 clip in class folders '0' and '1' (benchmarks/real_size.py's video)."""
    from real_size import write_dataset, write_video  # the script's folder is on sys.path

    video = write_video(folder / "clip.mp4")
    return write_dataset(folder / "data", video, per_class=max(1, videos // 2))


def bare_batches(
    models: dict[str, torch.nn.Module], data: Path, config: ExperimentConfig
) -> list[torch.Tensor]:
    """The runner's perturbed clips, decoded and stacked beforehand, cut into its batches."""
    spec = next(iter(models.values())).spec
    clips = []
    for item in open_dataset(data).items:
        (clip,) = load_clips(item.path, [spec])
        name = str(Path(item.path).relative_to(Path(data).absolute()))
        clips += [clip[list(order.order)] for order in video_orders(name, spec.frames, config)]
    stacked = torch.stack(clips)
    return list(stacked.split(config.batch_size))


def main() -> None:
    """Print clips/s of both sides per round, the medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=demo_probe_dir())
    parser.add_argument("--schemes", nargs="+", default=["tsn", "gsm"])
    parser.add_argument("--permutations", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--perturbations", nargs="*", default=[], help="default: every perturbation")
    parser.add_argument("--backbone", default=None, help="real-size mode: untrained models of this backbone")
    parser.add_argument("--size", type=int, default=224, help="input size in real-size mode")
    parser.add_argument("--videos", type=int, default=4, help="videos in real-size mode")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = tempfile.TemporaryDirectory()
    config = ExperimentConfig(perturbations=tuple(args.perturbations), permutations=args.permutations,
                              batch_size=args.batch_size)
    if args.backbone:
        models = real_size_models(args.schemes, args.backbone, args.size)
        args.data = real_size_data(Path(scratch.name), args.videos)
        with tempfile.TemporaryDirectory() as out:  # the batch the runner plans under its default budget
            planned = run_experiment(models, args.data, config, Path(out) / "run").run["execution"]
        planned = planned["batch_sizes"]
        config = ExperimentConfig(perturbations=config.perturbations, permutations=config.permutations,
                                  batch_size=min(planned))
    else:
        models = models_for(args.schemes)
    batches = bare_batches(models, args.data, config)
    clips = sum(len(b) for b in batches) * len(models)
    print(f"{len(models)} models x {clips // len(models)} perturbed clips, batch {config.batch_size}, "
          f"{torch.get_num_threads()} threads")
    wall: dict[str, list[float]] = {"bare": [], "runner": []}
    cpu: dict[str, list[float]] = {"bare": [], "runner": []}
    with torch.inference_mode():  # warm-up: first calls allocate
        for model in models.values():
            model(batches[0])

    def timed(side: str, work: Callable[[], int]) -> None:
        # CPU time of this process as well as wall time: on a shared machine other processes
        # stretch wall time at random, while the CPU seconds this work needs stay put.
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        done = work()
        wall[side].append(done / (time.perf_counter() - wall_start))
        cpu[side].append(done / (time.process_time() - cpu_start))

    def bare_round() -> int:
        with torch.inference_mode():
            for batch in batches:
                for model in models.values():
                    model(batch)
        return clips

    def runner_round() -> int:
        with tempfile.TemporaryDirectory() as out:
            rows = len(run_experiment(models, args.data, config, Path(out) / "run").results)
        assert rows == clips
        return rows

    for round_number in range(args.rounds):
        # alternate which side goes first: a load spike should not always hit the same side
        sides = [("bare", bare_round), ("runner", runner_round)]
        for side, work in sides if round_number % 2 == 0 else sides[::-1]:
            timed(side, work)
        print(f"round {round_number + 1}: bare {wall['bare'][-1]:7.2f} clips/s ({cpu['bare'][-1]:7.2f} per "
              f"CPU-s)   runner {wall['runner'][-1]:7.2f} clips/s ({cpu['runner'][-1]:7.2f} per CPU-s)")
    for name, rates in (("wall time", wall), ("CPU time", cpu)):
        bare, runner = statistics.median(rates["bare"]), statistics.median(rates["runner"])
        ratio = runner / bare
        print(f"{name:9s}: bare {bare:7.2f}, runner {runner:7.2f} clips/s -> ratio runner/bare = {ratio:.3f} "
              f"(target >= {TARGET:.2f}: {'met' if ratio >= TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
