"""Frame-order experiments on real decoded probe videos: known answers, statistics, resumption, CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.perturb import order_only_names
from analysis.statistics import bootstrap_interval, mcnemar_p, sign_flip_p
from analysis.temporal import (
    ExperimentConfig,
    clip_orders,
    load_result,
    run_experiment,
    sweep_curve,
)
from tests.conftest import randomize
from workbench import build_model, file_sha256, load_model, save_model
from workbench.cli.temporal import main as temporal_main
from workbench.datasets import open_dataset
from workbench.demo import demo_checkpoints
from workbench.errors import AnalysisError
from workbench.probe import class_kinds, class_names, mirror_table, write_probe_dataset

REPO = Path(__file__).resolve().parents[1]
TEMPORAL_SCHEMES = ("tsm", "gsm", "gsf", "c3d", "r2plus1d", "csn", "gst")
DEMO_PERTURBATIONS = ("original", "shuffle", "reverse", "sweep")
DEMO_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)


def fresh_model(scheme: str, seed: int = 0, *, mirrors: bool = True, size: int = 48) -> torch.nn.Module:
    """An untrained demo-sized model with seeded non-trivial weights and the probe classes."""
    options = {"class_names": class_names()}
    if mirrors:
        options |= {"mirror_of": mirror_table(), "class_kinds": class_kinds()}
    model = build_model(scheme, backbone="resnet-tiny", num_classes=len(class_names()), frames=8,
                        input_size=size, **options)
    return randomize(model, seed)


@pytest.fixture(scope="module")
def probe48(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh probe set the demo models never saw: 5 clips per class, 16 frames, 48 px."""
    return write_probe_dataset(tmp_path_factory.mktemp("probe48") / "data", 5, seed=90210, progress=False)


@pytest.fixture(scope="module")
def demo_run(probe48: Path) -> pd.DataFrame:
    """Every shipped demo model on the fresh probe set (one run, shared by the known-answer tests)."""
    checkpoints = demo_checkpoints()
    if not checkpoints:
        pytest.fail("the demo zoo is missing from workbench/assets")
    models = {scheme: load_model(path) for scheme, path in checkpoints.items()}
    config = ExperimentConfig(perturbations=DEMO_PERTURBATIONS, permutations=2, seed=7, bootstrap=500,
                              levels=DEMO_LEVELS)
    return run_experiment(models, probe48, config, checkpoints=checkpoints)


def demo_summary(run, scheme: str) -> pd.DataFrame:
    if scheme not in set(run.results["model"]):
        pytest.fail(f"the {scheme} demo model is missing from workbench/assets")
    return run.summary[run.summary["model"] == scheme].set_index(["perturbation", "level"])


def assert_order_blind(results: pd.DataFrame, model: str) -> None:
    """Every order-only perturbation leaves the model's output unchanged (up to float noise)."""
    rows = results[results["model"] == model]
    original = rows[rows["perturbation"] == "original"].set_index("video_index")
    reordered = rows[rows["perturbation"].isin(order_only_names())]
    assert len(reordered) > 0
    assert not reordered["flip"].any()
    assert reordered["kl"].max() < 1e-5
    same = original.loc[reordered["video_index"], "p_true"].to_numpy()
    np.testing.assert_allclose(reordered["p_true"].to_numpy(), same, atol=1e-5)
    assert (reordered["prediction"].to_numpy() == original.loc[reordered["video_index"], "prediction"]).all()


# ---------------------------------------------------------------------------------------------
# Known answers


def test_tsn_ignores_every_reordering_but_not_freezing(tiny_probe: Path) -> None:
    models = {"tsn": fresh_model("tsn", 1, size=32), "tsm": fresh_model("tsm", 1, size=32)}
    dataset = open_dataset(tiny_probe)
    dataset.items = dataset.items[::3]  # one video per class: enough for an exact answer
    config = ExperimentConfig(permutations=2, bootstrap=200, levels=(0.0, 0.5, 1.0))
    result = run_experiment(models, dataset, config)
    assert_order_blind(result.results, "tsn")
    assert (result.results["scheme"] == result.results["model"]).all()  # one input group, own specs
    summary = result.summary.set_index(["model", "perturbation"])
    for perturbation in order_only_names():
        assert (summary.loc[("tsn", perturbation), "change"] == 0).all()
    # the test can fail: freezing removes motion and changes TSN's input, and TSM reads order
    tsn = result.results[result.results["model"] == "tsn"]
    assert tsn.loc[tsn["perturbation"] == "freeze", "kl"].max() > 1e-3
    tsm = result.results[result.results["model"] == "tsm"]
    assert tsm.loc[tsm["perturbation"] == "shuffle", "kl"].max() > 1e-4


@pytest.fixture(scope="module")
def static_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The static-class clips of a fresh probe set (10 per class, a seed never used in training)."""
    root = write_probe_dataset(tmp_path_factory.mktemp("static") / "data", 10, seed=4242, progress=False)
    rows = (root / "labels.csv").read_text().splitlines()
    static = [row for row in rows[1:] if row.split(",")[1].startswith("static_")]
    listing = root / "static.csv"  # next to classes.json, so class kinds and mirrors are known
    listing.write_text("\n".join([rows[0], *static]) + "\n")
    return listing


@pytest.mark.slow
def test_demo_models_keep_static_classes_under_shuffle(static_probe: Path) -> None:
    """Static classes (shape alone) keep their accuracy within 5 points when the frames are shuffled."""
    checkpoints = demo_checkpoints()
    models = {scheme: load_model(checkpoints[scheme]) for scheme in ("tsn", *TEMPORAL_SCHEMES)}
    config = ExperimentConfig(perturbations=("original", "shuffle"), permutations=3, seed=11, bootstrap=500)
    result = run_experiment(models, static_probe, config)
    assert set(result.results["class_kind"]) == {"static"} and result.results["video"].nunique() == 40
    summary = result.summary.set_index(["model", "perturbation"])
    for scheme in models:
        shuffle = summary.loc[(scheme, "shuffle")]
        assert summary.loc[(scheme, "original"), "accuracy"] >= 0.75, scheme  # the model does know the shapes
        assert abs(shuffle["static_change"]) <= 0.05 + 1e-9, (scheme, shuffle.to_dict())


@pytest.mark.slow
def test_demo_tsn_is_order_blind(demo_run) -> None:
    demo_summary(demo_run, "tsn")
    assert_order_blind(demo_run.results, "tsn")


@pytest.mark.slow
@pytest.mark.parametrize("scheme", TEMPORAL_SCHEMES)
def test_demo_temporal_models_need_frame_order(demo_run, scheme: str) -> None:
    summary = demo_summary(demo_run, scheme)
    shuffle = summary.loc[("shuffle", -1.0)]
    assert shuffle["temporal_change"] <= -0.30, shuffle.to_dict()
    # static classes: checked on a larger static-only sample below (20 videos here: 1 flip = 2.5 points)
    assert abs(shuffle["static_change"]) < abs(shuffle["temporal_change"]) / 3, shuffle.to_dict()
    reverse = summary.loc[("reverse", -1.0)]
    assert reverse["mirror_rate"] >= 0.75, reverse.to_dict()  # reversed move_left -> move_right


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ("tsn", *TEMPORAL_SCHEMES))
def test_kendall_sweep_falls_for_temporal_models_and_is_flat_for_tsn(demo_run, scheme: str) -> None:
    demo_summary(demo_run, scheme)
    curve = sweep_curve(demo_run.results)
    curve = curve[curve["model"] == scheme].sort_values("level")
    accuracy = curve["accuracy"].to_numpy()
    assert len(accuracy) == len(DEMO_LEVELS)
    if scheme == "tsn":
        np.testing.assert_allclose(accuracy, accuracy[0], atol=1e-12)
        return
    # monotone-ish: no step up by more than noise (a curve may reach the chance floor and stay),
    # and a big fall from the original order to the far end
    assert np.diff(accuracy).max() <= 0.05, accuracy
    assert accuracy[0] - accuracy[-2:].max() >= 0.25, accuracy


@pytest.mark.slow
def test_paired_comparison_says_temporal_models_are_more_order_sensitive_than_tsn(demo_run) -> None:
    comparisons = demo_run.comparisons
    found = comparisons[(comparisons["model_a"] == "tsn") & (comparisons["perturbation"] == "shuffle")]
    if found.empty:
        pytest.fail("the tsn and temporal demo models are missing from workbench/assets")
    for row in found.itertuples():
        assert row.sensitivity_a == 0.0  # tsn: exactly no change
        assert row.difference < 0 and row.ci_high < 0, row
        assert row.p_value < 0.01, row
        assert row.only_a_flips == 0 and row.only_b_flips >= 10 and row.mcnemar_p < 0.01, row


# ---------------------------------------------------------------------------------------------
# Statistics


def test_statistics_known_answers() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_p(0, 10) == mcnemar_p(10, 0)
    assert bootstrap_interval(np.full(30, 0.25)) == (0.25, 0.25)
    low, high = bootstrap_interval(np.r_[np.zeros(50), np.ones(50)], 4000, seed=1)
    assert 0.39 < low < 0.42 and 0.58 < high < 0.61  # normal approx: 0.5 +- 1.96 * 0.05
    assert sign_flip_p(np.zeros(20)) == 1.0
    assert sign_flip_p(np.ones(20), 999) == pytest.approx(2 / 1000, abs=1e-3)  # only all-+/all- flips


# ---------------------------------------------------------------------------------------------
# Results on disk, datasets, resumption


def test_run_directory_contract(tiny_probe: Path, tmp_path: Path) -> None:
    checkpoint = save_model(fresh_model("tsm", 2, size=32), tmp_path / "tsm.pt")
    models = {"tsm": load_model(checkpoint)}
    config = ExperimentConfig(perturbations=("shuffle", "reverse", "freeze"), permutations=2, seed=5,
                              bootstrap=100, chunk_videos=5)
    result = run_experiment(models, tiny_probe, config, tmp_path / "run", checkpoints={"tsm": checkpoint})
    videos = 14 * 3
    # one row per video x model x perturbation x repeat: original 1 + shuffle 2 + reverse 1 + freeze 2
    assert len(result.results) == videos * 6
    assert result.results.groupby("perturbation").size().to_dict() == \
        {"original": videos, "shuffle": 2 * videos, "reverse": videos, "freeze": 2 * videos}
    back = load_result(tmp_path / "run")
    pd.testing.assert_frame_equal(back.results, result.results)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["kind"] == "temporal-test" and run["format"] == "gate-shift-workbench-run"
    (entry,) = run["models"]
    assert entry["sha256"] == file_sha256(checkpoint) and entry["scheme"] == "tsm"
    assert run["identity"]["models"][0]["sha256"] == entry["sha256"]
    dataset = run["dataset"]
    assert dataset["videos"] == videos and len(dataset["fingerprint"]) == 64
    assert run["seeds"] == {"perturbation": 5, "bootstrap": 5}
    assert {"torch", "captum", "decord", "workbench"} <= set(run["versions"])
    assert run["status"] == "complete" and run["skipped_videos"] == []
    summary = pd.read_csv(tmp_path / "run" / "summary.csv")
    assert {"accuracy", "ci_low", "ci_high", "change", "flip_rate", "mean_kl"} <= set(summary.columns)
    assert ((summary["ci_low"] <= summary["accuracy"]) & (summary["accuracy"] <= summary["ci_high"])).all()
    assert (tmp_path / "run" / "class_sensitivity.csv").is_file()
    # the rows are the model's real outputs: p_true on the original is what a plain forward gives
    row = result.results[(result.results["perturbation"] == "original")].iloc[0]
    from workbench.video import load_clip

    with torch.inference_mode():
        probs = models["tsm"](load_clip(tiny_probe / row["video"], models["tsm"].spec)).softmax(1)[0]
    assert row["p_true"] == pytest.approx(float(probs[row["label"]]), abs=1e-5)
    # another experiment in the same directory is refused, not mixed in
    with pytest.raises(AnalysisError, match="different experiment"):
        run_experiment(models, tiny_probe, ExperimentConfig(seed=6), tmp_path / "run",
                       checkpoints={"tsm": checkpoint})


def test_mirror_pairs_from_classes_json_and_plain_class_folders(tiny_probe: Path, tmp_path: Path) -> None:
    # the spec has no mirror pairs: they come from the probe set's classes.json
    models = {"tsm": fresh_model("tsm", 3, mirrors=False, size=32)}
    config = ExperimentConfig(perturbations=("reverse",), bootstrap=50)
    rows = run_experiment(models, tiny_probe, config).results
    left = rows[rows["class_name"] == "move_left"]
    assert (left["mirror"] == class_names().index("move_right")).all() and left["p_mirror"].notna().all()
    assert set(rows["class_kind"]) == {"temporal", "static"}
    # class folders without classes.json: any dataset works, without mirror metrics
    folder = tmp_path / "folders"
    for name in ("move_left", "move_right"):
        shutil.copytree(tiny_probe / name, folder / name)
    (folder / "move_left" / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    warnings: list[str] = []
    plain_run = run_experiment(models, folder, config, warn=warnings.append)
    plain = plain_run.results
    # the unreadable file is skipped with a warning, the run goes on
    assert plain_run.run["skipped_videos"] == ["move_left/broken.mp4"]
    assert len(warnings) == 1 and "broken.mp4" in warnings[0]
    assert len(plain) == 2 * 3 * 2
    assert set(plain["scheme"]) == {"tsm"}
    assert (plain["mirror"] == -1).all() and plain["p_mirror"].isna().all()
    assert not plain["predicted_mirror"].any() and set(plain["class_kind"]) == {"unknown"}


def _cli(models: list[Path], data: Path, out: Path) -> list[str]:
    args = [sys.executable, "-m", "workbench.cli.temporal", "--data", str(data), "--out", str(out),
            "--perturbations", "shuffle", "reverse", "--permutations", "2", "--chunk-videos", "4",
            "--threads", "1", "--quiet", "--bootstrap", "200"]
    for model in models:
        args += ["--model", str(model)]
    return args


@pytest.mark.slow
def test_sigkill_midway_then_rerun_gives_the_uninterrupted_results(probe48: Path, tmp_path: Path) -> None:
    models = [save_model(fresh_model("tsm", 4), tmp_path / "tsm.pt"),
              save_model(fresh_model("gsm", 5), tmp_path / "gsm.pt")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    full = subprocess.run(_cli(models, probe48, tmp_path / "full"), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert full.returncode == 0, full.stderr
    total_parts = len(list((tmp_path / "full" / "parts").glob("part-*.parquet")))
    assert total_parts == 18  # 70 videos, 4 per part

    out = tmp_path / "killed"
    process = subprocess.Popen(_cli(models, probe48, out), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(list((out / "parts").glob("part-*.parquet"))) < 3:
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    done = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("part-*.parquet")}
    assert 3 <= len(done) < total_parts, f"{len(done)} of {total_parts} parts: the kill did not land midway"
    assert not (out / "results.parquet").exists(), "the killed run must not have merged its results"

    again = subprocess.run(_cli(models, probe48, out), cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    # finished parts were kept, not recomputed
    assert {name: (out / "parts" / name).stat().st_mtime_ns for name in done} == done
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"),
                                  pd.read_parquet(tmp_path / "full" / "results.parquet"))
    assert (out / "summary.csv").read_text() == (tmp_path / "full" / "summary.csv").read_text()
    assert (out / "results.parquet").read_bytes() == (tmp_path / "full" / "results.parquet").read_bytes()
    assert json.loads((out / "run.json").read_text())["resumed"] == 1


def test_cli_user_errors_are_one_line(tiny_probe: Path, tmp_path: Path, capsys) -> None:
    checkpoint = save_model(fresh_model("tsn", 0, size=32), tmp_path / "tsn.pt")
    base = ["--model", str(checkpoint), "--out", str(tmp_path / "run")]
    assert temporal_main([*base, "--data", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no such dataset")
    assert temporal_main([*base, "--data", str(tiny_probe), "--perturbations", "shuffel"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown perturbations") and "\n" not in err
    other = save_model(build_model("tsn", backbone="resnet-tiny", num_classes=3, frames=8, input_size=32,
                                   class_names=["a", "b", "c"]), tmp_path / "abc.pt")
    code = temporal_main(["--model", str(other), "--out", str(tmp_path / "r2"), "--data", str(tiny_probe)])
    assert code == 2
    assert "is not a class of the tsn model" in capsys.readouterr().err


def test_cli_runs_and_prints_the_summary(tiny_probe: Path, tmp_path: Path, capsys) -> None:
    checkpoint = save_model(fresh_model("tsn", 0, size=32), tmp_path / "tsn.pt")
    code = temporal_main(["--model", str(checkpoint), "--model", str(checkpoint), "--data", str(tiny_probe),
                          "--out", str(tmp_path / "run"), "--perturbations", "reverse", "--quiet",
                          "--bootstrap", "100"])
    out = capsys.readouterr().out
    assert code == 0 and "reverse" in out and "paired comparisons" in out
    results = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert set(results["model"]) == {"tsn", "tsn-2"}  # same file twice: labels kept apart


def test_clip_orders_on_one_real_clip(tiny_probe: Path) -> None:
    video = next((tiny_probe / "move_up").glob("*.mp4"))
    models = {"tsn": fresh_model("tsn", 6, size=32), "gsm": fresh_model("gsm", 6, size=32)}
    config = ExperimentConfig(perturbations=("shuffle", "reverse", "freeze"), permutations=2)
    clip = clip_orders(models, video, config, true_class="move_up")
    assert clip.frames.shape[0] == 8 and clip.frames.dtype == torch.uint8
    assert [o.perturbation for o in clip.orders] == ["original", "shuffle", "shuffle", "reverse", "freeze",
                                                     "freeze"]
    table = clip.predictions
    assert len(table) == 2 * len(clip.orders)
    tsn = table[(table["model"] == "tsn") & table["perturbation"].isin((*order_only_names(), "original"))]
    assert tsn["prediction"].nunique() == 1
    np.testing.assert_allclose(tsn["p_true"], tsn["p_true"].iloc[0], atol=1e-5)
