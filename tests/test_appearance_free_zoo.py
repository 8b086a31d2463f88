"""The demo zoo trained on the appearance-free probe: shipped, small, and TSN at chance on a fresh seed
(every frame it sees alone is noise), while a scheme that reads motion is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.appearance_free import appearance_free_summary
from analysis.statistics import binomial_interval
from workbench.demo import ASSETS, DEMO_SCHEMES, demo_checkpoints, demo_manifest
from workbench.evaluate import evaluate_checkpoint
from workbench.probe import class_names, write_probe_dataset

CHANCE = 1 / len(class_names())
FRESH_SEED = 2027  # neither the training seed (1) nor the manifest's test seed (2026)


def test_the_appearance_free_zoo_is_shipped_within_the_asset_budget() -> None:
    shipped = demo_checkpoints(appearance_free=True)
    assert list(shipped) == list(DEMO_SCHEMES) == list(demo_checkpoints())  # the main zoo's schemes
    entries = demo_manifest(appearance_free=True)["models"]
    for entry in entries:
        assert "--appearance-free" in entry["train_data"] and "--appearance-free" in entry["test_data"]
    # what ships: every asset but training states left by a local `demo --train` (gitignored)
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file() and p.suffix != ".train-state")
    assert total <= 30_000_000, f"assets hold {total / 1e6:.1f} MB"
    summary = appearance_free_summary(entries).set_index("scheme")
    assert summary.loc["tsn", "ci_low"] <= CHANCE <= summary.loc["tsn", "ci_high"]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_probe_dataset(tmp_path_factory.mktemp("free") / "data", 10, FRESH_SEED, progress=False,
                               appearance_free=True)


@pytest.mark.slow
def test_tsn_is_at_chance_and_c3d_is_not(fresh: Path) -> None:
    shipped = demo_checkpoints(appearance_free=True)
    for scheme in ("tsn", "c3d"):
        report = evaluate_checkpoint(shipped[scheme], fresh, progress=False)
        low, high = binomial_interval(round(report["accuracy"] * report["clips"]), report["clips"])
        if scheme == "tsn":
            assert low <= CHANCE <= high, (low, high)
        else:
            assert low > CHANCE, (scheme, low)
