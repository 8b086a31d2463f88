"""Throughput of `temporal-test` with 1 vs N processes (torchrun), and on the GPU vs the CPU, in one run.

Every side runs the real command on the same probe videos, demo models and settings, and writes the
same rows. Sides alternate within each round so load from other processes hits all of them alike;
figures are medians over rounds. Two figures per side:

- end to end: rows / wall time of the whole command (start-up, decoding, forward, merge, statistics);
- scoring: rows / (that time - the time of re-running the finished run directory), i.e. without the
  fixed cost of starting Python + torch and of merging and bootstrapping, which a 25k-video run
  amortises. A "row" is one model x one perturbed clip (one forward of one clip).
- rows per CPU-second of scoring (every process of the command counted): the steady figure on a
  shared machine, where other jobs stretch wall time at random.

    python benchmarks/scaling.py [--processes 2] [--clips-per-class 4] [--rounds 2]
    python benchmarks/scaling.py --device cuda [--amp bf16]     # GPU vs CPU, on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout, no install
from workbench.demo import demo_checkpoints  # noqa: E402
from workbench.probe import write_probe_dataset  # noqa: E402


def free_port() -> int:
    """A free TCP port for torchrun's rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# torchrun starts each rank in a session of its own, i.e. (with the kernel's sched_autogroup) in a
# scheduling group of its own, out of reach of a `nice` on this script: that alone made torchrun's
# ranks several times faster than a niced single process on a shared machine. So every side's
# processes run in their own session, each lowering its group to nice 19 before exec: equal footing,
# and jobs sharing the machine keep their priority.
NICE_GROUP = 'echo 19 > /proc/self/autogroup 2>/dev/null; exec "$0" "$@"'


def command(side: dict, data: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """The temporal-test command line of one side (torchrun when it has several processes)."""
    checkpoints = demo_checkpoints()
    launch = ["sh", "-c", NICE_GROUP, sys.executable]
    if side["processes"] > 1:
        launch += ["-m", "torch.distributed.run", "--nproc_per_node", str(side["processes"]),
                   "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "--no-python",
                   "sh", "-c", NICE_GROUP, sys.executable]
    cli = ["-m", "workbench", "temporal-test", "--data", str(data), "--out", str(out), "--quiet",
           "--perturbations", "shuffle", "reverse", "--permutations", str(args.permutations),
           "--chunk-videos", str(args.chunk_videos), "--bootstrap", "200", "--threads", str(side["threads"]),
           "--device", side["device"], "--amp", side["amp"], "--workers", str(side["workers"])]
    for scheme in args.schemes:
        cli += ["--model", str(checkpoints[scheme])]
    return launch + cli


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all its processes, torchrun's ranks included) of one command."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, start_new_session=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    """Print rows/s of every side per round, the medians and the ratios to the first side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="processes of the torchrun side")
    parser.add_argument("--device", default="cpu", help="cuda: compare the GPU with the CPU instead")
    parser.add_argument("--amp", default="off", choices=("off", "bf16", "fp16"), help="GPU side's precision")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader decoding workers (GPU side)")
    parser.add_argument("--schemes", nargs="+", default=["tsn", "gsm"])
    parser.add_argument("--clips-per-class", type=int, default=4, help="probe videos per class (14 classes)")
    parser.add_argument("--permutations", type=int, default=2)
    parser.add_argument("--chunk-videos", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    if args.device.startswith("cuda"):
        sides = [{"name": "cpu, 1 process", "processes": 1, "threads": cores, "device": "cpu", "amp": "off",
                  "workers": 0},
                 {"name": f"{args.device}, amp {args.amp}", "processes": 1, "threads": cores,
                  "device": args.device, "amp": args.amp, "workers": args.workers}]
    else:
        sides = [{"name": "1 process x 1 thread", "processes": 1, "threads": 1},
                 {"name": f"1 process x {cores} threads", "processes": 1, "threads": cores},
                 {"name": f"{args.processes} processes x 1 thread", "processes": args.processes,
                  "threads": 1}]
        for side in sides:
            side.update(device="cpu", amp="off", workers=0)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_probe_dataset(Path(tmp) / "data", args.clips_per_class, seed=4242, frames=16, size=48,
                                   progress=False)
        videos = 14 * args.clips_per_class
        print(f"{videos} probe videos (16 frames, 48 px), models {' '.join(args.schemes)}, chunks of "
              f"{args.chunk_videos} videos, {cores} CPU cores (os.cpu_count)")
        end_to_end: dict[str, list[float]] = {s["name"]: [] for s in sides}
        scoring: dict[str, list[float]] = {s["name"]: [] for s in sides}
        per_cpu: dict[str, list[float]] = {s["name"]: [] for s in sides}
        rows = 0
        for round_number in range(args.rounds):
            order = sides if round_number % 2 == 0 else sides[::-1]
            for side in order:
                out = Path(tmp) / f"run-{round_number}-{sides.index(side)}"
                full, full_cpu = timed(command(side, data, out, args))
                # the finished run again: start-up + merge only
                fixed, fixed_cpu = timed(command(side, data, out, args))
                rows = json.loads((out / "run.json").read_text())["rows"]
                end_to_end[side["name"]].append(rows / full)
                scoring[side["name"]].append(rows / max(full - fixed, 1e-6))
                per_cpu[side["name"]].append(rows / max(full_cpu - fixed_cpu, 1e-6))
                print(f"round {round_number + 1}  {side['name']:24s} {full:6.1f} s ({fixed:5.1f} s fixed)  "
                      f"{rows / full:7.1f} rows/s end to end  {rows / max(full - fixed, 1e-6):7.1f} rows/s "
                      f"scoring  {per_cpu[side['name']][-1]:6.1f} rows per CPU-s scoring")
        print(f"\n{rows} rows per run; medians over {args.rounds} rounds; ratio = side / first side")
        base = sides[0]["name"]
        base_e2e, base_score = statistics.median(end_to_end[base]), statistics.median(scoring[base])
        base_cpu = statistics.median(per_cpu[base])
        for name in end_to_end:
            e2e, score = statistics.median(end_to_end[name]), statistics.median(scoring[name])
            cpu = statistics.median(per_cpu[name])
            print(f"{name:24s} end to end {e2e:7.1f} rows/s (x{e2e / base_e2e:.2f})   "
                  f"scoring {score:7.1f} rows/s (x{score / base_score:.2f})   "
                  f"{cpu:6.1f} rows per CPU-s (x{cpu / base_cpu:.2f})")
        print("rows per CPU-second: the work each side needs; steadier than wall time on a shared machine, "
              "where other jobs stretch wall time at random")


if __name__ == "__main__":
    main()
