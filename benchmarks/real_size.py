"""Every analysis on real-size models and a real video: seconds, peak RSS and the ratio to its bare passes.

Models (seeded weights, written to a temporary folder at start):
  gsm-r50        a ResNet-50 GSM at 8x224, built by workbench's build_model
  gsm-bninc      the official GSM BN-Inception release layout (8x224), loaded by workbench.models.official
  r2plus1d       torchvision's r2plus1d_18 release layout (a 3D model, its own frames and size)
Video: one 640x272 H.264 clip of a few seconds, encoded here with imageio-ffmpeg (the temporal-test
dataset is copies of it in two numeric class folders).

Each row runs one CLI command (`python -m workbench ...`) in a fresh process and reads that process's
peak RSS from the kernel (os.wait4's ru_maxrss: VmHWM of the child). Its bare passes are the forward
and forward+backward passes the analysis needs at least (counted from the analysis: IG's steps and two
delta forwards, the curve points, Occlusion's windows, the perturbed orders, ...), timed here at batch 1
on the same model; the ratio is the command's seconds over theirs (start-up, decoding and model loading
included, so short commands show it most). Each row is run at the default budget and at every
`--budgets` value; a row whose peak RSS is over its budget is flagged OVER.

The full run takes a long while on a CPU (Occlusion at 224 px is ~850 forwards per map at its default
window): `--occlusion-window 56` (stride 56, 112 windows at 8x224) keeps it to ~35 min. A reduced check:

    python benchmarks/real_size.py --models gsm-bninc --analyses predict attribute:saliency --budgets 2GiB
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, no install
from analysis.attribution import METHODS  # noqa: E402
from analysis.attribution.methods import _occlusion_windows  # noqa: E402
from analysis.gates import INTERVENTIONS, gated_ops  # noqa: E402
from analysis.gates.interventions import _targets  # noqa: E402
from analysis.temporal import ExperimentConfig, video_orders  # noqa: E402
from workbench import build_model, load_model, save_model  # noqa: E402
from workbench.models.memory import DEFAULT_MAX_MEMORY, format_size, parse_size  # noqa: E402
from workbench.probe import encode_mp4  # noqa: E402

MODELS = ("gsm-r50", "gsm-bninc", "r2plus1d")
ANALYSES = ("predict", "gates", "temporal-test", *(f"attribute:{m}" for m in METHODS))
CURVE_STEPS = 16
TEMPORAL = {"perturbations": ("shuffle", "reverse", "freeze"), "permutations": 2}


def write_models(folder: Path, wanted: list[str]) -> dict[str, Path]:
    """Seeded checkpoints of the wanted models in `folder`."""
    from tests.release_files import write_release
    from tests.test_official import reference, release_dict

    paths = {}
    if "gsm-r50" in wanted:
        torch.manual_seed(0)
        model = build_model("gsm", backbone="resnet50", num_classes=174, frames=8, input_size=224)
        paths["gsm-r50"] = save_model(model, folder / "gsm_r50.pt")
    if "gsm-bninc" in wanted:
        ref = reference("gsm_bninception_sthv1_8f")
        path = folder / ref["filename_hint"]
        torch.save(release_dict(ref), path)
        paths["gsm-bninc"] = path
    if "r2plus1d" in wanted:
        paths["r2plus1d"] = write_release("tv_r2plus1d_18_k400", folder)
    return paths


def write_video(path: Path, seconds: float = 3.0, fps: int = 25) -> Path:
    """A 640x272 clip: a textured disc moving over a gradient, so every frame differs."""
    frames = int(seconds * fps)
    y, x = np.mgrid[0:272, 0:640]
    pixels = np.empty((frames, 272, 640, 3), np.uint8)
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (272, 640), dtype=np.uint8)
    for t in range(frames):
        cx, cy = 80 + 480 * t / frames, 136 + 60 * np.sin(t / 6)
        disc = (x - cx) ** 2 + (y - cy) ** 2 < 50**2
        pixels[t, ..., 0] = (x * 255 // 640).astype(np.uint8)
        pixels[t, ..., 1] = np.where(disc, texture, (y * 255 // 272)).astype(np.uint8)
        pixels[t, ..., 2] = np.where(disc, 255 - texture, 96).astype(np.uint8)
    encode_mp4(pixels, path, fps=fps)
    return path


def write_dataset(folder: Path, video: Path, per_class: int = 2) -> Path:
    """Copies of the video in class folders '0' and '1' (numeric names: a class index of any model)."""
    for label in ("0", "1"):
        (folder / label).mkdir(parents=True)
        for n in range(per_class):
            shutil.copy(video, folder / label / f"clip{n}.mp4")
    return folder


def bare_seconds(model: torch.nn.Module, rounds: int = 3) -> tuple[float, float]:
    """Median seconds of one forward and of one forward+input-backward at batch 1 on the model's input."""
    spec = model.spec
    clip = torch.randn(1, spec.frames, 3, spec.input_size, spec.input_size)
    forward, backward = [], []
    with torch.inference_mode():
        model(clip)  # warm-up
    for _ in range(rounds):
        start = time.perf_counter()
        with torch.inference_mode():
            model(clip)
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        inputs = clip.clone().requires_grad_(True)
        torch.autograd.grad(model(inputs)[:, 0].sum(), inputs)
        backward.append(time.perf_counter() - start)
    return statistics.median(forward), statistics.median(backward)


def occlusion_options(window: int | None) -> dict[str, int]:
    """Occlusion's window and stride in pixels (None: the method's defaults)."""
    return {"window": window, "stride": window} if window else {}


def passes(
    analysis: str, model: torch.nn.Module, videos: int, occlusion_window: int | None = None
) -> tuple[int, int] | None:
    """(forwards, forward+backwards) the analysis needs at least; None when it does not apply."""
    spec = model.spec
    frames = spec.frames
    if analysis == "predict":
        return 1, 0
    if analysis == "gates":
        try:
            gated_ops(model)
        except ValueError:
            return None  # not a gated model
        return 2 + len(_targets(model, True)) * len(INTERVENTIONS), 0
    if analysis == "temporal-test":
        config = ExperimentConfig(**TEMPORAL)
        return videos * len(video_orders("clip", frames, config)), 0
    method = analysis.split(":", 1)[1]
    row = METHODS[method]
    options = row.parse(occlusion_options(occlusion_window) if method == "occlusion" else {})
    curves = 2 * (CURVE_STEPS + 1) + 2 * (frames + 1)
    base = 1 + curves  # the prediction and the two curves
    clip = torch.empty(1, frames, 3, spec.input_size, spec.input_size, device="meta")
    if method == "integrated_gradients":
        extra = (2, options.steps)  # the convergence delta's two forwards
    elif method == "smoothgrad":
        extra = (0, options.samples)
    elif method == "occlusion":
        extra = (1 + _occlusion_windows(options, clip), 0)
    elif method == "temporal_ablation":
        extra = (1 + frames, 0)
    else:
        extra = (0, 1)
    return base + extra[0], extra[1]


def command(
    analysis: str, checkpoint: Path, video: Path, data: Path, out: Path, occlusion_window: int | None = None
) -> list[str]:
    """The CLI command line of one analysis."""
    if analysis == "predict":
        return ["predict", str(checkpoint), str(video)]
    if analysis == "gates":
        return ["gates", str(checkpoint), str(video), "--out", str(out)]
    if analysis == "temporal-test":
        return ["temporal-test", "--model", str(checkpoint), "--data", str(data), "--out", str(out),
                "--perturbations", *TEMPORAL["perturbations"],
                "--permutations", str(TEMPORAL["permutations"]), "--bootstrap", "200", "--quiet"]
    method = analysis.split(":", 1)[1]
    line = ["attribute", str(video), "--model", str(checkpoint), "--methods", method, "--out", str(out),
            "--curve-steps", str(CURVE_STEPS)]
    if method == "occlusion":
        for key, value in occlusion_options(occlusion_window).items():
            line += ["--method-option", f"occlusion.{key}={value}"]
    return line


def run_child(args: list[str], threads: int) -> tuple[float, int, int, str]:
    """(seconds, peak RSS bytes, exit status, last stderr line) of `python -m workbench ARGS`."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-m", "workbench", *args], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        err.seek(0)
        lines = [line for line in err.read().splitlines() if line.strip()]
    return seconds, usage.ru_maxrss * 1024, child.returncode, lines[-1] if lines else ""


def main() -> None:
    """Print one row per model x analysis x budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--analyses", nargs="+", choices=ANALYSES, default=list(ANALYSES),
                        metavar="ANALYSIS", help=f"any of {' '.join(ANALYSES)}")
    parser.add_argument("--budgets", nargs="*", default=["2GiB"],
                        help="budgets besides the default, e.g. 2GiB (each row runs at every one)")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of the children (0: default)")
    parser.add_argument("--occlusion-window", type=int, default=None,
                        help="Occlusion window and stride in pixels (default: 1/6, 1/12 of the side)")
    args = parser.parse_args()
    budgets: list[tuple[str, int]] = [("default", DEFAULT_MAX_MEMORY)]
    budgets += [(text, parse_size(text)) for text in args.budgets]
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoints = write_models(folder, args.models)
        video = write_video(folder / "real_640x272.mp4")
        data = write_dataset(folder / "data", video)
        videos = 4
        window = f"{args.occlusion_window} px" if args.occlusion_window else "default"
        print(f"video 640x272, 75 frames; {torch.get_num_threads()} threads here; "
              f"budgets: {', '.join(f'{n} ({format_size(b)})' for n, b in budgets)}; "
              f"occlusion window {window}")
        header = (f"{'model':10s} {'analysis':32s} {'budget':>8s} {'seconds':>8s} {'peak RSS':>9s} "
                  f"{'bare s':>7s} {'ratio':>6s}  verdict")
        print(header)
        over = 0
        for label, checkpoint in checkpoints.items():
            model = load_model(checkpoint)
            fw, bw = bare_seconds(model)
            spec = model.spec
            print(f"# {label}: {spec.backbone} {spec.scheme} {spec.frames}x{spec.input_size}; bare forward "
                  f"{fw:.2f} s, forward+backward {bw:.2f} s at batch 1")
            for analysis in args.analyses:
                needed = passes(analysis, model, videos, args.occlusion_window)
                if needed is None:
                    print(f"{label:10s} {analysis:32s} {'':>8s} {'-':>8s}  (not a gated model)")
                    continue
                bare = needed[0] * fw + needed[1] * bw
                for name, budget in budgets:
                    out = folder / "runs" / f"{label}-{analysis.replace(':', '-')}-{name}"
                    line = command(analysis, checkpoint, video, data, out, args.occlusion_window)
                    if name != "default":
                        line += ["--max-memory", name]
                    seconds, peak, status, last = run_child(line, args.threads)
                    verdict = "ok" if status == 0 else f"exit {status}: {last[:90]}"
                    if peak > budget:
                        verdict, over = f"OVER {verdict}", over + 1
                    print(f"{label:10s} {analysis:32s} {name:>8s} {seconds:8.1f} {format_size(peak):>9s} "
                          f"{bare:7.1f} {seconds / bare:5.2f}x  {verdict}", flush=True)
        print(f"{over} row(s) over their budget")


if __name__ == "__main__":
    main()
