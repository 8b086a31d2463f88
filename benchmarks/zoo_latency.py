"""CPU latency of every scheme relative to tsn, measured side by side in one run.

Target: GSM <= 1.03x TSN (resnet18 at 8x112 and resnet50 at 8x224). Interleaved repeats (scheme
order rotated every round) so that load from other processes hits every scheme alike; the figure is
the median over rounds, and each ratio's spread is that of the per-round ratios (a scheme's time
over tsn's in the same round): interquartile range and min-max. A wide spread means a loaded machine.

    python benchmarks/zoo_latency.py [--backbone resnet50] [--frames 8] [--size 224] [--rounds 7] [--fused]

--fused adds a row "gsm-fused": the same GSM model with the opt-in fused inference kernel
(workbench.models.fused_gsm; built on first use, about a minute), timed in the same rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install
from workbench import available_schemes, build_model  # noqa: E402
from workbench.models import fused_gsm  # noqa: E402

TARGET = 1.03  # GSM's latency over TSN's: its gate conv adds under 1% (resnet50) to 1.5% (resnet18) FLOPs


def main() -> None:
    """Print median latency per scheme and its ratio to tsn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--schemes", nargs="*", default=available_schemes())
    parser.add_argument("--fused", action="store_true", help="add GSM with the fused kernel (gsm-fused)")
    args = parser.parse_args()
    schemes = list(dict.fromkeys(["tsn", *args.schemes, *(["gsm"] if args.fused else [])]))
    models = {
        s: build_model(s, backbone=args.backbone, num_classes=174, frames=args.frames).eval() for s in schemes
    }
    runs = {s: (models[s], False) for s in schemes}  # label -> (model, fused kernel on)
    if args.fused:
        fused_gsm.enable()
        runs["gsm-fused"] = (models["gsm"], True)
    schemes = list(runs)
    clip = torch.randn(args.batch, args.frames, 3, args.size, args.size)
    times: dict[str, list[float]] = {s: [] for s in schemes}
    with torch.inference_mode():
        for model, fused in runs.values():
            with fused_gsm.using(fused):
                model(clip)  # warm-up
        for r in range(args.rounds):
            order = schemes[r % len(schemes):] + schemes[: r % len(schemes)]
            for s in order:
                model, fused = runs[s]
                with fused_gsm.using(fused):
                    start = time.perf_counter()
                    model(clip)
                    times[s].append(time.perf_counter() - start)
    base = statistics.median(times["tsn"])
    print(f"backbone={args.backbone} frames={args.frames} size={args.size} batch={args.batch} "
          f"rounds={args.rounds} threads={torch.get_num_threads()}")
    print(f"{'scheme':10s} {'median ms':>10s} {'vs tsn':>8s} {'per-round IQR':>15s} {'min-max':>13s}")
    for s in schemes:
        med = statistics.median(times[s])
        low, high = spread(times[s], times["tsn"])
        print(f"{s:10s} {1000 * med:10.1f} {med / base:8.3f}x {low[0]:7.3f}-{high[0]:<7.3f}"
              f" {low[1]:6.3f}-{high[1]:<6.3f}")
    for label in ("gsm", "gsm-fused"):
        if label in times:
            ratio = statistics.median(times[label]) / base
            verdict = "PASS" if ratio <= TARGET else "FAIL"
            print(f"{label} over TSN: {ratio:.3f}x (target <= {TARGET:.2f}x) -> {verdict}")


def spread(times: list[float], base: list[float]) -> tuple[tuple[float, float], tuple[float, float]]:
    """((first quartile, min), (third quartile, max)) of the per-round ratios times / base."""
    ratios = sorted(t / b for t, b in zip(times, base))
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return (quartiles[0], ratios[0]), (quartiles[2], ratios[-1])


if __name__ == "__main__":
    main()
