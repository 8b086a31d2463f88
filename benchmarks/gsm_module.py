"""Our GSM module vs the literal nn.Conv3d form of the paper's module, at BN-Inception's gated widths.

Both compute the same function with the same weights (tests/test_gsm_reference.py checks outputs and
gradients); this times them side by side in one run: inference and forward+backward (input and
weight gradients, as training and Captum need), interleaved rounds (the order flips every round),
medians, and the spread (min-max) of the per-round ratios. The widths and frame sizes are those of
the ten GSM modules of the BN-Inception release at 224x224, 8 frames.

    python benchmarks/gsm_module.py [--frames 8] [--batch 1] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install
from tests.gsm_reference import Conv3dGateShift  # noqa: E402
from workbench.models.temporal import GateShift  # noqa: E402

# (name, channels, frame size) of the BN-Inception GSM release's gated units at 224x224 input
BNINCEPTION_GATES = [
    ("inception_3a_1x1", 64, 28), ("inception_3b_1x1", 64, 28), ("inception_3c_3x3_reduce", 128, 28),
    ("inception_4a_1x1", 224, 14), ("inception_4b_1x1", 192, 14), ("inception_4c_1x1", 160, 14),
    ("inception_4d_1x1", 96, 14), ("inception_4e_3x3_reduce", 128, 14), ("inception_5a_1x1", 352, 7),
    ("inception_5b_1x1", 352, 7),
]


def step(module: torch.nn.Module, x: torch.Tensor, frames: int, backward: bool) -> Callable[[], None]:
    """One timed call: a forward (inference mode) or a forward and backward to input and weights."""
    if not backward:
        def run() -> None:
            with torch.inference_mode():
                module(x, frames)
        return run
    probe = torch.randn_like(x)

    def run_backward() -> None:
        xi = x.clone().requires_grad_(True)
        (module(xi, frames) * probe).sum().backward()
    return run_backward


def rounds(calls: dict[str, Callable[[], None]], count: int) -> dict[str, list[float]]:
    """Seconds per call, interleaved: the order of the variants flips every round."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    for call in calls.values():
        call()  # warm-up
    for r in range(count):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"frames={args.frames} batch={args.batch} rounds={args.rounds} threads={torch.get_num_threads()}")
    head = "{:>22s} {:>6s} {:>11s}"
    print(f"{'gated unit':26s} {'C':>4s} {'HxW':>6s} | "
          + head.format("inference ms ours/ref", "ratio", "min-max")
          + " | " + head.format("fwd+bwd ms ours/ref", "ratio", "min-max"))
    totals = {mode: {"ours": 0.0, "ref": 0.0} for mode in ("inference", "fwd+bwd")}
    for name, channels, size in BNINCEPTION_GATES:
        ours = GateShift(channels, 2, interleave=True).eval()
        with torch.no_grad():
            ours.conv3D.weight.normal_(0, 0.05)
        ref = Conv3dGateShift.like(ours)
        x = torch.randn(args.batch * args.frames, channels, size, size)
        cells = []
        for mode in totals:
            backward = mode == "fwd+bwd"
            times = rounds({"ours": step(ours, x, args.frames, backward),
                            "ref": step(ref, x, args.frames, backward)}, args.rounds)
            ratios = [r / o for o, r in zip(times["ours"], times["ref"])]
            med = {k: statistics.median(v) for k, v in times.items()}
            for k in med:
                totals[mode][k] += med[k]
            cells.append(f"{1000 * med['ours']:9.2f} / {1000 * med['ref']:9.2f}"
                         f" {statistics.median(ratios):5.1f}x {min(ratios):5.1f}-{max(ratios):<5.1f}")
        print(f"{name:26s} {channels:4d} {size:>3d}x{size:<3d}| " + " | ".join(cells))
    for mode, t in totals.items():
        print(f"all ten, {mode}: ours {1000 * t['ours']:.1f} ms, literal Conv3d form {1000 * t['ref']:.1f} ms"
              f" -> ours {t['ref'] / t['ours']:.1f}x faster")


if __name__ == "__main__":
    main()
