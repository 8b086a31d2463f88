"""decord against PyAV on evaluation sampling, side by side in one run: seconds and peak memory.

Each measurement is `load_clip(video, spec, decoder=...)` for a 224-crop model (resize 256): probe, TSN
segment-centre sampling (`sample_indices(n, frames)`), decode at the reduced size `_decode_side` picks,
preprocess. Videos: 300 frames of 640x360 and 30 frames of 3840x2160, H.264 as x264 writes it (B-frames,
one GOP). Every measurement runs in a fresh process, so its peak RSS (above that process's baseline after
imports and a warm-up decode) is its own; rounds alternate which back end goes first. Target: the slower
back end within 2x of the faster. `--also NAME=PATH` adds a decord-compatible package installed under
PATH (e.g. decord2, which imports as `decord`) as a third column.

    python benchmarks/decode.py [--rounds 3] [--repeats 3] [--also decord2=/tmp/site]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = {"640x360, 300 frames": (640, 360, 300), "3840x2160, 30 frames": (3840, 2160, 30)}
FRAME_COUNTS = (8, 16)


def make_videos(folder: Path) -> dict[str, Path]:
    """The benchmark videos, encoded once with the bundled ffmpeg (testsrc2: motion and detail)."""
    import imageio_ffmpeg

    paths = {}
    for label, (width, height, frames) in VIDEOS.items():
        path = folder / f"bench_{width}x{height}_{frames}.mp4"
        if not path.exists():
            source = f"testsrc2=size={width}x{height}:rate=30"
            subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi",
                            "-i", source, "-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast",
                            "-pix_fmt", "yuv420p", str(path)], check=True)
        paths[label] = path
    return paths


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def child(decoder: str, video: str, frames: int, repeats: int, warm: str) -> None:
    """One measurement in this process: print {"seconds": median, "peak_mb": above baseline, ...}."""
    import warnings

    from workbench.models.spec import ModelSpec
    from workbench.video import load_clip, video_info

    warnings.simplefilter("ignore")
    spec = ModelSpec(scheme="tsn", backbone="resnet50", num_classes=2, frames=frames, input_size=224,
                     resize=256)
    load_clip(warm, spec, decoder=decoder)  # libraries loaded, threads started: not part of the figure
    baseline = _rss_bytes()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        clip = load_clip(video, spec, decoder=decoder)
        seconds.append(time.perf_counter() - start)
    assert clip.shape == (1, frames, 3, 224, 224)
    start = time.perf_counter()
    info = video_info(video, decoder=decoder)
    probe = time.perf_counter() - start
    print(json.dumps({"seconds": statistics.median(seconds), "peak_mb": (_peak_bytes() - baseline) / 2**20,
                      "probe_s": probe, "decoder": info["decoder"]}))


def measure(decoder: str, path_first: str | None, video: Path, frames: int, repeats: int, warm: Path) -> dict:
    """Run `child` in a fresh interpreter (one thread for torch; FFmpeg's decoders use their own)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (path_first, str(ROOT), env.get("PYTHONPATH")) if p)
    command = [sys.executable, __file__, "--child", decoder, str(video), str(frames), str(repeats), str(warm)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Print each round's figures, then the medians side by side with the slower/faster ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (median)")
    parser.add_argument("--also", action="append", default=[], help="NAME=PATH: a decord-compatible build")
    parser.add_argument("--videos", type=Path, default=Path(tempfile.gettempdir()) / "workbench_decode_bench")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        decoder, video, frames, repeats, warm = args.child
        child(decoder, video, int(frames), int(repeats), warm)
        return
    sys.path.insert(0, str(ROOT))
    from workbench.video import available_decoders

    args.videos.mkdir(parents=True, exist_ok=True)
    videos = make_videos(args.videos)
    warm = next(iter(videos.values()))
    columns: dict[str, tuple[str, str | None]] = {"pyav": ("pyav", None)}
    if "decord" in available_decoders():
        columns = {"decord": ("decord", None), **columns}
    for extra in args.also:
        name, _, path = extra.partition("=")
        columns[name] = ("decord", path)
    print(f"columns: {', '.join(columns)}; {args.rounds} rounds x {args.repeats} calls; "
          f"python {sys.version.split()[0]}")
    results: dict[tuple[str, int, str], list[dict]] = {}
    for round_number in range(args.rounds):
        for label, path in videos.items():
            for frames in FRAME_COUNTS:
                order = list(columns) if round_number % 2 == 0 else list(columns)[::-1]
                line = []
                for column in order:
                    decoder, path_first = columns[column]
                    figure = measure(decoder, path_first, path, frames, args.repeats, warm)
                    results.setdefault((label, frames, column), []).append(figure)
                    line.append(f"{column} {figure['seconds']:.3f} s {figure['peak_mb']:.0f} MB")
                print(f"round {round_number + 1}  {label:22s} {frames:2d} frames: " + "   ".join(line))
    print()
    header = "".join(f"{column + ' s':>12s}{column + ' MB':>12s}" for column in columns)
    print(f"{'video':22s}{'frames':>7s}{header}{'slower/faster':>15s}")
    worst = 0.0
    for label in videos:
        for frames in FRAME_COUNTS:
            cells, times = "", []
            for column in columns:
                figures = results[(label, frames, column)]
                seconds = statistics.median(f["seconds"] for f in figures)
                peak = statistics.median(f["peak_mb"] for f in figures)
                times.append(seconds)
                cells += f"{seconds:12.3f}{peak:12.0f}"
            ratio = max(times[:2]) / min(times[:2])  # decord against PyAV (the first two columns)
            worst = max(worst, ratio)
            print(f"{label:22s}{frames:7d}{cells}{ratio:15.2f}")
    probe = statistics.median(f["probe_s"] for figures in results.values() for f in figures)
    print(f"\nprobe (video_info, PyAV, in every measurement): median {probe * 1000:.0f} ms")
    if len(columns) > 1:
        verdict = "met" if worst <= 2.0 else "NOT met"
        print(f"worst slower/faster ratio {worst:.2f} (target <= 2.00: {verdict})")


if __name__ == "__main__":
    main()
