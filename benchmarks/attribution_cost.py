"""Cost of Integrated Gradients per clip relative to its floor, for every scheme, in one run.

The floor is what IG must do at least: one forward+backward pass over the 32 interpolated clips
(a batch of 32, input gradients on), as IG runs them (internal_batch_size = steps). The ratio
IG / floor is Captum's overhead (building the path, scaling and summing the gradients, the
convergence delta's two extra forwards). Target: <= 1.3x for every scheme. Rounds are
interleaved (scheme order rotated) so load from other processes hits every scheme alike; the
figures are medians over rounds.

    python benchmarks/attribution_cost.py [--backbone resnet-tiny] [--frames 8] [--size 48] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install
from analysis.attribution import attribute  # noqa: E402
from workbench import available_schemes, build_model  # noqa: E402

TARGET = 1.3


def floor_pass(model: torch.nn.Module, clip: torch.Tensor, steps: int, target: int) -> None:
    """`steps` forward+backward passes in one batch: the least work IG with `steps` steps can do."""
    alphas = torch.linspace(0, 1, steps).view(steps, 1, 1, 1, 1)
    batch = (alphas * clip).requires_grad_(True)
    # gradients for the input only, as IG needs (a .backward() would also build weight gradients)
    torch.autograd.grad(model(batch)[:, target].sum(), batch)


def main() -> None:
    """Print per scheme: IG s/clip, floor s, their ratio (and without the convergence delta)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet-tiny")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--schemes", nargs="*", default=available_schemes())
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {s: build_model(s, backbone=args.backbone, num_classes=14, frames=args.frames).eval()
              for s in args.schemes}
    clip = torch.randn(1, args.frames, 3, args.size, args.size)
    ig: dict[str, list[float]] = {s: [] for s in args.schemes}
    ig_nodelta: dict[str, list[float]] = {s: [] for s in args.schemes}
    floor: dict[str, list[float]] = {s: [] for s in args.schemes}
    for model in models.values():  # warm-up: first calls allocate
        attribute(model, clip, "integrated_gradients", target=0, steps=args.steps)
        floor_pass(model, clip, args.steps, 0)
    for r in range(args.rounds):
        order = args.schemes[r % len(args.schemes):] + args.schemes[: r % len(args.schemes)]
        for scheme in order:
            model = models[scheme]
            start = time.perf_counter()
            floor_pass(model, clip, args.steps, 0)
            floor[scheme].append(time.perf_counter() - start)
            start = time.perf_counter()
            attribute(model, clip, "integrated_gradients", target=0, steps=args.steps)
            ig[scheme].append(time.perf_counter() - start)
            start = time.perf_counter()
            attribute(model, clip, "integrated_gradients", target=0, steps=args.steps,
                      convergence_delta=False)
            ig_nodelta[scheme].append(time.perf_counter() - start)
    print(f"backbone={args.backbone} frames={args.frames} size={args.size} steps={args.steps} "
          f"rounds={args.rounds} threads={torch.get_num_threads()} target<={TARGET}x")
    print(f"{'scheme':10s} {'IG s/clip':>10s} {'floor s':>10s} {'ratio':>7s}   {'no-delta ratio':>14s}")
    worst = 0.0
    for scheme in args.schemes:
        ig_s, floor_s = statistics.median(ig[scheme]), statistics.median(floor[scheme])
        ratio = ig_s / floor_s
        bare = statistics.median(ig_nodelta[scheme]) / floor_s
        worst = max(worst, ratio)
        flag = "ok" if ratio <= TARGET else "OVER"
        print(f"{scheme:10s} {ig_s:10.3f} {floor_s:10.3f} {ratio:6.2f}x {flag:4s} {bare:6.2f}x")
    print(f"worst ratio {worst:.2f}x ({'meets' if worst <= TARGET else 'misses'} the {TARGET}x target)")


if __name__ == "__main__":
    main()
