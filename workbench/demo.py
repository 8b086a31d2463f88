"""The shipped demo zoo: one probe-trained checkpoint per scheme, a manifest, and probe clips."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .models import available_schemes, file_sha256

ASSETS = Path(__file__).resolve().parent / "assets"
MODELS_DIR = ASSETS / "models"
PROBE_DIR = ASSETS / "probe"  # a few probe clips (with masks) for the app and tests
MANIFEST = ASSETS / "manifest.json"
# the same eight schemes trained with the same recipe on the appearance-free probe (`demo --train
# --appearance-free`): every frame is noise, only motion tells the classes apart
MODELS_AF_DIR = ASSETS / "models_af"
MANIFEST_AF = ASSETS / "manifest_af.json"
# attribution metrics of the demo zoo over probe clips (`attribute --data`): summary.csv + run.json
LOCALISATION = ASSETS / "attribution_localisation"

# the recipe: changing any of these means retraining (`python -m workbench demo --train`)
# the schemes the demo zoo trains: the GSM paper's comparison (mc3, i3d and s3d come with releases)
DEMO_SCHEMES = ("tsn", "tsm", "gsm", "gsf", "c3d", "r2plus1d", "csn", "gst")
TRAIN_SEED = 1
TRAIN_CLIPS_PER_CLASS = 150
TEST_SEED = 2026  # never used for training: the quality bar is measured on it
TEST_CLIPS_PER_CLASS = 30
ASSET_PROBE_SEED = 7
ASSET_CLIPS_PER_CLASS = 2
DEMO_TRAINING = {"backbone": "resnet-tiny", "frames": 8, "size": 48, "epochs": 14, "batch_size": 32,
                 "lr": 3e-3, "seed": 0, "order_free_p": 0.5}


def cache_dir() -> Path:
    """Where generated training/test probe sets live (not in the repo)."""
    root = os.environ.get("WORKBENCH_CACHE") or Path.home() / ".cache" / "gate-shift-workbench"
    return Path(root)


def _zoo(appearance_free: bool) -> tuple[Path, Path]:
    """(checkpoint folder, manifest) of the regular or the appearance-free demo zoo."""
    return (MODELS_AF_DIR, MANIFEST_AF) if appearance_free else (MODELS_DIR, MANIFEST)


def demo_manifest(appearance_free: bool = False) -> dict[str, Any]:
    """The manifest of shipped demo models (empty list when none are shipped)."""
    manifest = _zoo(appearance_free)[1]
    if not manifest.exists():
        return {"models": []}
    return json.loads(manifest.read_text())


def demo_checkpoints(appearance_free: bool = False) -> dict[str, Path]:
    """Scheme name -> shipped checkpoint path, in registry order (`appearance_free`: that zoo's)."""
    entries = {e["scheme"]: ASSETS / e["file"] for e in demo_manifest(appearance_free)["models"]}
    return {s: entries[s] for s in available_schemes() if s in entries and entries[s].exists()}


def demo_localisation() -> tuple[Any, dict[str, Any]] | None:
    """The shipped attribution table of the demo models (pandas DataFrame, run.json), keeping only the
    rows of checkpoints that are still the shipped ones (a retrained model invalidates its rows)."""
    import pandas as pd

    summary, run_file = LOCALISATION / "summary.csv", LOCALISATION / "run.json"
    if not summary.is_file() or not run_file.is_file():
        return None
    run = json.loads(run_file.read_text())
    shipped = {e["sha256"] for e in demo_manifest()["models"]}
    current = {c["name"] for c in run.get("checkpoints", []) if c.get("sha256") in shipped}
    table = pd.read_csv(summary)
    return table[table["model"].isin(current)].reset_index(drop=True), run


def demo_probe_dir() -> Path:
    """The shipped probe clips (a small probe dataset with labels.csv, classes.json and masks)."""
    return PROBE_DIR


def _cached(name: str, marker: str, write: Callable[[Path], object]) -> Path:
    """cache_dir()/name, written once by `write` into a temporary folder renamed when `marker` exists."""
    out = cache_dir() / name
    if not (out / marker).exists():
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        write(tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def probe_set(seed: int, clips_per_class: int, appearance_free: bool = False) -> Path:
    """A generated probe dataset in the cache (made once per seed, size and kind)."""
    from .probe import write_probe_dataset

    kind = "probe-af" if appearance_free else "probe"
    return _cached(f"{kind}-seed{seed}-n{clips_per_class}", "labels.csv", lambda tmp: write_probe_dataset(
        tmp, clips_per_class, seed, appearance_free=appearance_free))


def pair_set(seed: int, pairs_per_class: int) -> Path:
    """A generated pair set for the static/dynamic estimate, in the cache (made once per seed and size)."""
    from .probe import PAIRS_FILE, write_pair_dataset

    return _cached(f"pairs-seed{seed}-n{pairs_per_class}", PAIRS_FILE, lambda tmp: write_pair_dataset(
        tmp, pairs_per_class, seed, progress=False))


def train_demo_zoo(schemes: list[str] | None = None, appearance_free: bool = False) -> dict[str, Any]:
    """Train every demo model from scratch, evaluate on a fresh seed, write the manifest.

    `appearance_free`: the same recipe on appearance-free probe sets of the same seeds, into
    `assets/models_af/` and `manifest_af.json`."""
    from .evaluate import evaluate_checkpoint
    from .probe import write_probe_dataset
    from .train import TrainConfig, train_model

    train_dir = probe_set(TRAIN_SEED, TRAIN_CLIPS_PER_CLASS, appearance_free)
    test_dir = probe_set(TEST_SEED, TEST_CLIPS_PER_CLASS, appearance_free)
    models_dir = _zoo(appearance_free)[0]
    models_dir.mkdir(parents=True, exist_ok=True)
    if not (PROBE_DIR / "labels.csv").exists():
        write_probe_dataset(PROBE_DIR, ASSET_CLIPS_PER_CLASS, ASSET_PROBE_SEED)
    for scheme in schemes or DEMO_SCHEMES:
        out = models_dir / f"{scheme}.pt"
        config = TrainConfig(scheme=scheme, data=str(train_dir), out=str(out), **DEMO_TRAINING)
        started = time.perf_counter()
        train_model(config, resume=True)
        seconds = time.perf_counter() - started
        report = evaluate_checkpoint(out, test_dir)
        # others may have written meanwhile: read the manifest again
        entries = {e["scheme"]: e for e in demo_manifest(appearance_free)["models"]}
        entries[scheme] = manifest_entry(scheme, out, config, seconds, report, appearance_free)
        write_manifest(entries, appearance_free)
    return demo_manifest(appearance_free)


METRIC_KEYS = ("accuracy", "temporal_accuracy", "static_accuracy", "pair_accuracy", "reverse_to_mirror",
               "per_class", "reverse_to_mirror_per_class", "clips", "class_names", "confusion")


def manifest_entry(
    scheme: str, out: Path, config: Any, seconds: float, report: dict[str, Any], appearance_free: bool = False
) -> dict[str, Any]:
    """One model's manifest record, with metrics measured on the fresh test seed."""
    from .models import load_model

    model = load_model(out)
    flag = " --appearance-free" if appearance_free else ""
    return {
        "scheme": scheme,
        "file": str(out.relative_to(ASSETS)),
        "sha256": file_sha256(out),
        "size_bytes": out.stat().st_size,
        "params": sum(p.numel() for p in model.parameters()),
        "train_command": config.command().replace(str(cache_dir()), "$WORKBENCH_CACHE"),
        "train_seconds": round(seconds, 1),
        "train_data": f"probe-data --seed {TRAIN_SEED} --clips-per-class {TRAIN_CLIPS_PER_CLASS}{flag}",
        "test_data": f"probe-data --seed {TEST_SEED} --clips-per-class {TEST_CLIPS_PER_CLASS}{flag}",
        "evaluate_command": f"python -m workbench evaluate workbench/assets/{out.relative_to(ASSETS)} "
                            f"--data <probe-data seed {TEST_SEED}{flag}>",
        "metrics": {k: report.get(k) for k in METRIC_KEYS},
    }


def reevaluate_demo_zoo(appearance_free: bool = False) -> dict[str, Any]:
    """Rebuild the manifest from the checkpoints on disk, measured again on the fresh test seed.

    Each checkpoint carries its training command and per-epoch history, so the manifest can
    always be regenerated from the files (training time = the sum of its epoch times).
    """
    from .evaluate import evaluate_checkpoint
    from .models import load_model

    test_dir = probe_set(TEST_SEED, TEST_CLIPS_PER_CLASS, appearance_free)
    entries = {e["scheme"]: e for e in demo_manifest(appearance_free)["models"]}
    for scheme in available_schemes():
        path = _zoo(appearance_free)[0] / f"{scheme}.pt"
        if not path.exists():
            continue
        model = load_model(path)
        command = model.extra.get("command", "")
        seconds = sum(h.get("seconds", 0.0) for h in model.history)
        report = evaluate_checkpoint(path, test_dir)
        entry = entries.get(scheme, {})
        entry.update(manifest_entry(scheme, path, _Command(command), seconds, report, appearance_free))
        entries[scheme] = entry
    write_manifest(entries, appearance_free)
    return demo_manifest(appearance_free)


class _Command:
    """Adapter: a recorded command string where manifest_entry expects a TrainConfig."""

    def __init__(self, text: str) -> None:
        self.text = text

    def command(self) -> str:
        return self.text


def write_manifest(entries: dict[str, dict[str, Any]], appearance_free: bool = False) -> None:
    """Write the manifest in registry order."""
    ordered = [entries[s] for s in available_schemes() if s in entries]
    _zoo(appearance_free)[1].write_text(json.dumps({"models": ordered}, indent=2) + "\n")
