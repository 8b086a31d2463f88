"""Cost of Integrated Gradients and of the deletion/insertion curves against their bare passes, in one run.

IG's floor is what IG must do at least: 32 forward+backward passes over the interpolated clips, in the
batches the memory budget gives IG (`--max-memory`, default the CLI's), input gradients only. The ratio
IG / floor is Captum's overhead (building the path, scaling and summing the gradients, the convergence
delta's two extra forwards). The curves' floor is the forward of their 2 x (steps + 1) perturbed clips in
the batches the budget gives, clips built beforehand; the ratio is the cost of building each batch of
perturbed clips on the way. Targets (issue 16): IG <= 1.15x at 8x224, curves <= 1.15x. Rounds are
interleaved (scheme order rotated) so load from other processes hits every side alike; the figures are
medians over rounds.

    python benchmarks/attribution_cost.py [--backbone resnet18] [--frames 8] [--size 224] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install
from analysis.attribution import METHODS, attribute, batched_options, deletion_insertion  # noqa: E402
from workbench import build_model  # noqa: E402
from workbench.models.inference import predict_logits  # noqa: E402
from workbench.models.memory import Budget, measure_footprint  # noqa: E402

IG_TARGET, CURVE_TARGET = 1.15, 1.15


def ig_floor(model: torch.nn.Module, clip: torch.Tensor, steps: int, batch: int, target: int) -> None:
    """`steps` forward+backward passes in batches of `batch`: the least work IG with `steps` steps can do."""
    alphas = torch.linspace(0, 1, steps).view(steps, 1, 1, 1, 1)
    for chunk in alphas.split(batch):
        inputs = (chunk * clip).requires_grad_(True)
        # gradients for the input only, as IG needs (a .backward() would also build weight gradients)
        torch.autograd.grad(model(inputs)[:, target].sum(), inputs)


def main() -> None:
    """Print per scheme: IG and curve seconds, their floors and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--curve-steps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--max-memory", default=None, help="memory budget (default: the CLI's default)")
    parser.add_argument("--schemes", nargs="*", default=["tsn", "gsm"])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    budget = Budget.of(args.max_memory)
    models = {s: build_model(s, backbone=args.backbone, num_classes=14, frames=args.frames,
                             input_size=args.size).eval() for s in args.schemes}
    clip = torch.randn(1, args.frames, 3, args.size, args.size)
    saliency = np.abs(np.random.default_rng(0).standard_normal((args.frames, args.size, args.size)))
    row = METHODS["integrated_gradients"]
    batches = {}
    times: dict[str, dict[str, list[float]]] = {s: {k: [] for k in ("ig", "floor", "curves", "bare")}
                                                for s in args.schemes}
    for scheme, model in models.items():  # warm-up: first calls allocate; the footprint is traced once
        measure_footprint(model)
        options = batched_options(row, row.parse({"steps": args.steps}), model, clip, budget)
        batches[scheme] = options.internal_batch_size
        ig_floor(model, clip, min(2, args.steps), batches[scheme], 0)
    n_curve = 2 * (args.curve_steps + 1)
    for r in range(args.rounds):
        order = args.schemes[r % len(args.schemes):] + args.schemes[: r % len(args.schemes)]
        for scheme in order:
            model, batch = models[scheme], batches[scheme]
            start = time.perf_counter()
            ig_floor(model, clip, args.steps, batch, 0)
            times[scheme]["floor"].append(time.perf_counter() - start)
            start = time.perf_counter()
            attribute(model, clip, "integrated_gradients", target=0, steps=args.steps, memory=budget)
            times[scheme]["ig"].append(time.perf_counter() - start)
            start = time.perf_counter()
            deletion_insertion(model, clip, saliency, 0, steps=args.curve_steps, memory=budget)
            times[scheme]["curves"].append(time.perf_counter() - start)
            perturbed = clip.expand(n_curve, *clip.shape[1:]).clone()
            start = time.perf_counter()
            predict_logits(model, perturbed, memory=budget)
            times[scheme]["bare"].append(time.perf_counter() - start)
            del perturbed
    print(f"backbone={args.backbone} frames={args.frames} size={args.size} steps={args.steps} "
          f"curve_steps={args.curve_steps} rounds={args.rounds} threads={torch.get_num_threads()} "
          f"budget={budget.total / 2**30:.1f} GiB")
    print(f"{'scheme':8s} {'IG batch':>8s} {'IG s':>8s} {'floor s':>8s} {'ratio':>6s}   "
          f"{'curves s':>8s} {'bare s':>8s} {'ratio':>6s}")
    worst_ig = worst_curve = 0.0
    for scheme in args.schemes:
        med = {k: statistics.median(v) for k, v in times[scheme].items()}
        ig_ratio, curve_ratio = med["ig"] / med["floor"], med["curves"] / med["bare"]
        worst_ig, worst_curve = max(worst_ig, ig_ratio), max(worst_curve, curve_ratio)
        print(f"{scheme:8s} {batches[scheme]:8d} {med['ig']:8.2f} {med['floor']:8.2f} {ig_ratio:5.2f}x   "
              f"{med['curves']:8.2f} {med['bare']:8.2f} {curve_ratio:5.2f}x")
    ig_verdict = "meets" if worst_ig <= IG_TARGET else "misses"
    print(f"worst IG ratio {worst_ig:.2f}x ({ig_verdict} <= {IG_TARGET}x); "
          f"worst curve ratio {worst_curve:.2f}x "
          f"({'meets' if worst_curve <= CURVE_TARGET else 'misses'} <= {CURVE_TARGET}x)")


if __name__ == "__main__":
    main()
