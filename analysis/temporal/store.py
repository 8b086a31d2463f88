"""A temporal-test run directory: its tables (results, summary, class sensitivity, comparisons).

run.json itself is written and read by `workbench.rundir`; this module knows the tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench import rundir
from workbench.errors import RunDirError

from .config import ExperimentResult

__all__ = ["load_result", "write_result"]

RESULTS_FILE = "results.parquet"
SUMMARY_FILE = "summary.csv"
SENSITIVITY_FILE = "class_sensitivity.csv"
COMPARISONS_FILE = "comparisons.csv"
TABLES = {"summary": SUMMARY_FILE, "class_sensitivity": SENSITIVITY_FILE, "comparisons": COMPARISONS_FILE}


def write_result(result: ExperimentResult, run_dir: str | Path) -> None:
    """Write results.parquet, summary.csv, class_sensitivity.csv, comparisons.csv and run.json."""
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rundir.write_atomic(folder / RESULTS_FILE, lambda tmp: result.results.to_parquet(tmp, index=False))
    for name, file in TABLES.items():
        table: pd.DataFrame = getattr(result, name)
        rundir.write_atomic(folder / file, lambda tmp, table=table: table.to_csv(tmp, index=False))
    rundir.write_run(folder, result.run)
    result.run_dir = folder


def load_result(run_dir: str | Path) -> ExperimentResult:
    """A finished temporal-test run read back from its directory."""
    folder = Path(run_dir)
    run = rundir.read_run(folder)
    if run["kind"] != "temporal-test":
        raise RunDirError(f"{folder}: a {run['kind']} run, not a temporal-test run")

    def table(name: str) -> pd.DataFrame:
        try:
            return pd.read_csv(folder / name)
        except pd.errors.EmptyDataError:  # an empty table (e.g. no videos could be decoded)
            return pd.DataFrame()

    return ExperimentResult(
        results=pd.read_parquet(folder / RESULTS_FILE),
        summary=table(SUMMARY_FILE),
        class_sensitivity=table(SENSITIVITY_FILE),
        comparisons=table(COMPARISONS_FILE),
        run=run,
        run_dir=folder,
    )
