"""Run directories: the one module that writes and reads `run.json`, and the part files of resumable runs.

Every analysis command (`temporal-test`, `gates`, `attribute`) writes a run directory: its tables,
figures, arrays and a `run.json` that says what the run is (`kind`), in which format (`format`,
`version`), and where everything came from (provenance: command, software versions, seeds, the
models with their sha256 and scheme, the dataset with its fingerprint, the video). `report` writes
the same record for the whole report. Readers never guess a run's kind: `read_run` checks the
format, and brings run directories of the earlier format (written before run.json had a `kind`,
"format 0") to this one, or says which format it found.

A resumable run (temporal-test, attribute --data) records an `identity`: everything that decides its
rows. Re-running the same command resumes only when the identities match (`open_run_dir`); finished
chunks are kept as `parts/part-NNNNNN.parquet` (`Parts`).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import distributed
from .access import NOT_AVAILABLE, current_policy
from .errors import AnalysisError, RunDirError
from .fingerprints import dataset_fingerprint, file_sha256, model_fingerprint
from .version import VERSION

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from .datasets import VideoDataset

RUN_FILE = "run.json"
FORMAT = "gate-shift-workbench-run"
FORMAT_VERSION = 1
KINDS = ("temporal-test", "gates", "attribute", "receptive-field", "arrow-of-time", "static-dynamic",
         "report")
PARTS_DIR = "parts"
PACKAGES = ("torch", "captum", "decord", "av", "numpy", "pandas", "pyarrow", "scipy", "plotly")
T = TypeVar("T")


# --- provenance records ------------------------------------------------------------------------------


def now() -> str:
    """The current UTC time as run.json records it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def software_versions() -> dict[str, str]:
    """Python, the packages the results depend on, and the workbench."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    versions["workbench"] = VERSION
    return versions


def model_record(label: str, model: torch.nn.Module | None = None, path: str | Path | None = None) -> dict:
    """A model as run.json lists it: label, checkpoint path and sha256 (of the weights without a file)."""
    spec = getattr(model, "spec", None)
    if path is not None:
        sha = file_sha256(path)
    elif model is not None:
        sha = model_fingerprint(model)
    else:
        raise ValueError("a model record needs a checkpoint path or the model")
    return {"label": label, "path": str(path) if path is not None else None, "sha256": sha,
            "scheme": getattr(spec, "scheme", None), "layout": getattr(spec, "layout", None)}


def dataset_record(dataset: VideoDataset, path: str | Path, **extra: Any) -> dict:
    """A dataset as run.json lists it: path, fingerprint, number of videos, classes."""
    return {"path": str(path), "fingerprint": dataset_fingerprint(dataset), "videos": len(dataset.items),
            "classes": list(dataset.classes), **extra}


def video_record(path: str | Path) -> dict:
    """A video (file or frame folder) as run.json lists it: path and sha256."""
    return {"path": str(path), "sha256": file_sha256(path)}


def new_run(
    kind: str,
    command: str,
    *,
    models: Sequence[Mapping[str, Any]] = (),
    dataset: Mapping[str, Any] | None = None,
    video: Mapping[str, Any] | None = None,
    seeds: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A fresh run.json record of `kind` (status "running"); the command adds outputs and results."""
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}; known: {', '.join(KINDS)}")
    run: dict[str, Any] = {
        "format": FORMAT, "version": FORMAT_VERSION, "kind": kind, "command": command,
        "started": now(), "status": "running", "versions": software_versions(),
        "seeds": dict(seeds or {}), "models": [dict(m) for m in models],
        "dataset": dict(dataset) if dataset is not None else None,
        "video": dict(video) if video is not None else None, "options": dict(options or {}),
    }
    if identity is not None:
        run["identity"] = json.loads(json.dumps(identity, default=str))
    return run


def finish(run: dict[str, Any], **results: Any) -> dict[str, Any]:
    """Mark a run complete, with what it produced (outputs, rows, notes...)."""
    run.update(results, status="complete", finished=now())
    return run


# --- writing and reading ------------------------------------------------------------------------------


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file and rename: a kill leaves the old file or the new, never half."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def write_run(run_dir: str | Path, run: Mapping[str, Any]) -> Path:
    """Write `run_dir/run.json` atomically (creating the folder)."""
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RUN_FILE
    text = json.dumps(run, indent=2, default=str) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))
    return path


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """A run directory's run.json in the current format; RunDirError when it is not one we can read."""
    folder = Path(run_dir)
    path = folder / RUN_FILE
    if not current_policy().allows(folder):  # served: before anything looks at it, the same answer for all
        raise RunDirError(f"{folder}: {NOT_AVAILABLE}")
    if not folder.is_dir():
        raise RunDirError(f"{folder}: not a directory")
    if not path.is_file():
        raise RunDirError(f"{folder}: no {RUN_FILE}; not a workbench run directory")
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path}: unreadable run.json ({err})") from None
    if not isinstance(run, dict):
        raise RunDirError(f"{path}: run.json is not an object")
    if run.get("format") == FORMAT:
        version = run.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise RunDirError(f"{path}: run.json format version {version!r}; this workbench reads versions "
                              f"0 to {FORMAT_VERSION}: update the workbench")
        if run.get("kind") not in KINDS:
            raise RunDirError(f"{path}: unknown run kind {run.get('kind')!r}; known: {', '.join(KINDS)}")
        return run
    if "format" in run:
        raise RunDirError(f"{path}: run.json of format {run['format']!r}, not a workbench run")
    return _from_format_0(run, path)


def _from_format_0(run: dict[str, Any], path: Path) -> dict[str, Any]:
    """A run.json written before the format had a name (format 0), in the current format.

    Format 0 had one shape per analysis: temporal-test kept its identity under `experiment`, gates and
    attribute named themselves in `analysis` and listed their checkpoints as `checkpoint(s)`."""
    base = {"format": FORMAT, "version": FORMAT_VERSION, "upgraded_from": 0,
            "command": run.get("command"), "versions": run.get("versions", {}), "seeds": run.get("seeds", {}),
            "status": run.get("status", "complete")}
    carried = {k: run[k] for k in ("execution", "peak_memory", "skipped_videos", "notes", "rows", "finished",
                                   "resumed") if k in run}
    if "experiment" in run:
        experiment = run["experiment"]
        models = [{"label": m.get("label"), "path": m.get("checkpoint"), "sha256": m.get("sha256"),
                   "scheme": m.get("scheme"), "layout": None} for m in experiment.get("models", [])]
        return {**base, "kind": "temporal-test", "started": run.get("started"), "models": models,
                "dataset": experiment.get("dataset"), "video": None, "options": experiment.get("config", {}),
                "identity": experiment, **carried}
    analysis = run.get("analysis")
    if analysis == "gates":
        checkpoint = run.get("checkpoint") or {}
        label = Path(str(checkpoint.get("path", "model"))).stem
        return {**base, "kind": "gates", "started": run.get("date"),
                "models": [{"label": label, "path": checkpoint.get("path"),
                            "sha256": checkpoint.get("sha256"), "scheme": None, "layout": None}],
                "dataset": run.get("dataset"), "video": run.get("video"),
                "options": {"layer": run.get("layer"), "mask": run.get("mask")},
                "outputs": {"tables": run.get("tables", []), "figures": run.get("figures", [])}, **carried}
    if analysis == "attribution":
        models = [{"label": c.get("name"), "path": c.get("path"), "sha256": c.get("sha256"), "scheme": None,
                   "layout": None} for c in run.get("checkpoints", [])]
        options = {"methods": run.get("methods", []), "target": run.get("target"), **run.get("options", {})}
        return {**base, "kind": "attribute", "started": run.get("date"), "models": models,
                "dataset": run.get("dataset"), "video": run.get("video"), "options": options, **carried}
    raise RunDirError(f"{path}: run.json of no format this workbench knows (no 'format', 'experiment' or "
                      "'analysis' key)")


# --- resumable runs: identity check and part files ---------------------------------------------------


def on_main(action: Callable[[], T], error: type[Exception]) -> T | None:
    """`action()` on rank 0 only (it creates or checks the run directory); when it raises `error`,
    every rank raises it with the same message, so no rank goes on alone. None on the other ranks."""
    context = distributed.current()
    result, message = None, None
    if context.is_main:
        try:
            result = action()
        except error as err:
            message = str(err)
    message = distributed.broadcast(message)
    if message is not None:
        raise error(message)
    return result


def open_run_dir(run_dir: str | Path, run: dict[str, Any]) -> dict[str, Any]:
    """Create a resumable run's directory, or check that an existing one holds the same run (its
    `identity`) and carry its start time and resume count. Writes run.json (status running)."""
    folder = Path(run_dir)
    (folder / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    if (folder / RUN_FILE).is_file():
        try:
            previous = read_run(folder)
        except RunDirError as err:
            raise AnalysisError(f"{folder} holds something else ({err}); choose a new --out") from None
        if previous.get("kind") != run["kind"] or previous.get("identity") != run.get("identity"):
            raise AnalysisError(f"{folder} holds a different experiment (other models, data or settings); "
                                "choose a new --out or delete it")
        run["started"] = previous.get("started", run["started"])
        run["resumed"] = previous.get("resumed", 0) + (previous.get("status") != "complete")
    write_run(folder, run)
    return run


class Parts:
    """The parts of one run: on disk under `run_dir/parts` (resumable), or in memory without a run_dir."""

    def __init__(self, run_dir: str | Path | None) -> None:
        self.folder = Path(run_dir) / PARTS_DIR if run_dir is not None else None
        self._memory: dict[int, pd.DataFrame] = {}

    def path(self, number: int) -> Path:
        """The file of part `number`."""
        if self.folder is None:
            raise ValueError("parts kept in memory have no files")
        return self.folder / f"part-{number:06d}.parquet"

    def pending(self, numbers: Iterable[int]) -> list[int]:
        """Those of `numbers` whose part is not written yet."""
        return [n for n in numbers if self.folder is None or not self.path(n).is_file()]

    def save(self, number: int, rows: pd.DataFrame) -> None:
        """Keep a finished chunk's rows (written atomically when the run has a directory)."""
        if self.folder is None:
            self._memory[number] = rows
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path(number), lambda tmp: rows.to_parquet(tmp, index=False))

    def read(self, count: int) -> list[pd.DataFrame]:
        """Parts 0 .. count-1 in chunk order (every rank's, once all have passed a barrier)."""
        import pandas as pd

        return [self._memory[n] if n in self._memory else pd.read_parquet(self.path(n)) for n in range(count)]
