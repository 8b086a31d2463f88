"""Release checkpoints in the rest of the workbench: re-saved and re-loaded bit-exact, run by the CLI
(`--model-option`) in real subprocesses, and added in the app's sidebar."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.test_official import reference, release_dict
from workbench import load_model, save_model
from workbench.demo import demo_probe_dir
from workbench.errors import CheckpointError, UserError
from workbench.model_options import parse_model_options
from workbench.models.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
# the GSM BN-Inception release as GSM's training script saves it, renamed so nothing encodes frames
CLI_RELEASE = "gsm_bninception_sthv1_8f"


def write_release(name: str, path: Path) -> Path:
    """A seeded release file in the exact layout of reference `name`."""
    data = release_dict(reference(name))
    data["best_prec1"] = torch.tensor(48.5)  # a 0-d tensor, as the GSM/GSF releases store it
    torch.save(data, path)
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m workbench ...` in a fresh process, one thread (the machine is shared)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env)


def probe_video(class_name: str) -> Path:
    """A shipped probe clip (real mp4)."""
    video = sorted((demo_probe_dir() / class_name).glob("*.mp4"))[0]
    assert video.is_file()
    return video


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "small_input"),
    [("gsm_bninception_sthv1_8f", None), ("gsf_resnet50_sthv1_8f", 64), ("tsm_mobilenetv2_kinetics_8f", 64)],
)
def test_resaved_release_loads_bit_exact(name: str, small_input: int | None, tmp_path: Path) -> None:
    """load_model(release) -> save_model -> load_model: same keys, tensors, spec (layout) and logits."""
    ref = reference(name)
    release = write_release(name, tmp_path / ref["filename_hint"])
    labels = [f"action {i}" for i in range(ref["num_classes"])]
    model = load_model(release, class_names=labels)
    assert model.spec.layout == name.split("_")[0] + "-" + name.split("_")[1]
    copy_path = save_model(model, tmp_path / "resaved.pt", extra={"note": "re-saved release"})
    again = load_model(copy_path)
    assert again.spec.to_dict() == model.spec.to_dict() and again.spec.class_names[3] == "action 3"
    assert type(again.base_model) is type(model.base_model)
    mine, theirs = model.state_dict(), again.state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert again.extra == {"note": "re-saved release"} and not again.training
    if small_input is not None:  # global-pool backbones: a small clip is enough to compare functions
        clip = torch.randn(1, 4, 3, small_input, small_input, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            assert torch.equal(model(clip), again(clip))
    # spec-level overrides work on the re-saved file as on any workbench checkpoint
    assert load_model(copy_path, frames=16).spec.frames == 16


def test_resaved_release_with_a_foreign_layout_is_refused(tmp_path: Path) -> None:
    """A re-saved file whose spec claims another layout than its keys show fails, naming both."""
    ref = reference("tsm_mobilenetv2_kinetics_8f")
    model = load_model(write_release("tsm_mobilenetv2_kinetics_8f", tmp_path / ref["filename_hint"]))
    path = save_model(model, tmp_path / "resaved.pt")
    data = read_checkpoint(path)
    data["spec"]["layout"] = "tsm-resnet50"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=r"spec says layout 'tsm-resnet50'.*TSM mobilenetv2 release"):
        load_model(path)


def test_model_options_parse_and_refuse_bad_input(tmp_path: Path) -> None:
    """KEY=VALUE pairs become load_model overrides; a labels file becomes class names."""
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n\nc\n")
    assert parse_model_options(["frames=16", f"classes={labels}", "shift-div=4"]) == {
        "frames": 16, "class_names": ["a", "b", "c"], "shift_div": 4
    }
    for bad, message in [
        ("frames", "expected KEY=VALUE"), ("frames=x", "expected a whole number"), ("frames=0", "at least 1"),
        ("colour=red", "unknown key 'colour'"), (f"classes={tmp_path / 'none.txt'}", "no such labels file"),
    ]:
        with pytest.raises(UserError, match=message):
            parse_model_options([bad])
    with pytest.raises(UserError, match="frames given twice"):
        parse_model_options(["frames=8", "frames=16"])


@pytest.fixture(scope="module")
def cli_release(tmp_path_factory) -> tuple[Path, Path]:
    """(release file without frames in its name, labels file: the probe classes first, 174 in all)."""
    root = tmp_path_factory.mktemp("cli_release")
    release = write_release(CLI_RELEASE, root / "gsm_bninception_release.pth.tar")
    probe = sorted(p.name for p in demo_probe_dir().iterdir() if p.is_dir() and p.name != "masks")
    names = probe + [f"other_{i}" for i in range(174 - len(probe))]
    labels = root / "labels.txt"
    labels.write_text("\n".join(names) + "\n")
    return release, labels


@pytest.mark.slow
def test_cli_predict_needs_and_takes_model_options(cli_release: tuple[Path, Path]) -> None:
    """predict: without frames a one-line error saying how to give it; with options, class names."""
    release, labels = cli_release
    video = probe_video("move_left")
    missing = run_cli("predict", str(release), str(video))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    (line,) = [x for x in missing.stderr.splitlines() if x.startswith("error:")]
    assert "does not record its number of frames" in line and "--model-option frames=N" in line
    bad = run_cli("predict", str(release), str(video), "--model-option", "frame=4")
    assert bad.returncode == 2 and "unknown key 'frame'" in bad.stderr and "Traceback" not in bad.stderr
    ok = run_cli("predict", str(release), str(video), "--model-option", "frames=4",
                 "--model-option", f"classes={labels}", "--top", "3")
    assert ok.returncode == 0, ok.stderr
    rows = ok.stdout.strip().splitlines()
    assert len(rows) == 3 and all("%" in r for r in rows)
    names = set(labels.read_text().split())
    assert all(r.split()[-1] in names for r in rows)
    assert not any(r.split()[-1].startswith("class_") for r in rows)  # the labels file was used


@pytest.mark.slow
def test_cli_gates_on_a_gsm_release(cli_release: tuple[Path, Path], tmp_path: Path) -> None:
    """gates: the release's 10 GSM modules are found by the same hooks; tables are written."""
    release, _ = cli_release
    out = tmp_path / "gates"
    result = run_cli("gates", str(release), str(probe_video("move_right")), "--out", str(out),
                     "--model-option", "frames=4")
    assert result.returncode == 0, result.stderr
    stats = pd.read_csv(out / "gate_stats.csv")
    layers = sorted(stats["layer"].unique())
    assert len(layers) == 10 and "base_model.gsm_inception_3a_1x1" in layers
    assert set(stats["time"].unique()) == {0, 1, 2, 3}
    assert (out / "run.json").is_file() and (out / "interventions.csv").is_file()


@pytest.mark.slow
def test_cli_temporal_test_on_a_gsm_release(cli_release: tuple[Path, Path], tmp_path: Path) -> None:
    """temporal-test: original and reverse on two probe clips, labels matched through classes=."""
    release, labels = cli_release
    data = tmp_path / "two.csv"
    clips = [probe_video("move_left"), probe_video("grow")]
    data.write_text("path,label\n" + "".join(f"{c},{c.parent.name}\n" for c in clips))
    out = tmp_path / "temporal"
    result = run_cli("temporal-test", "--model", str(release), "--data", str(data), "--out", str(out),
                     "--perturbations", "original", "reverse", "--bootstrap", "50", "--quiet",
                     "--model-option", "frames=4", "--model-option", f"classes={labels}")
    assert result.returncode == 0, result.stderr
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 4 and set(results["perturbation"]) == {"original", "reverse"}
    assert set(results["class_name"]) == {"move_left", "grow"}
    assert (out / "summary.csv").is_file() and (out / "run.json").is_file()
    # its report builds; the model table says the release needs the run's options to load
    report = run_cli("report", str(out), "--out", str(tmp_path / "report.html"))
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "report.html").read_text()
    assert "not loaded here" in html and "frames" in html and "Accuracy under each perturbation" in html


@pytest.mark.slow
def test_cli_attribute_on_a_gsm_release(cli_release: tuple[Path, Path], tmp_path: Path) -> None:
    """attribute: saliency on one clip of a release model writes its maps and metrics."""
    release, _ = cli_release
    out = tmp_path / "attr"
    result = run_cli("attribute", str(probe_video("move_up")), "--model", str(release), "--methods",
                     "saliency", "--curve-steps", "2", "--out", str(out), "--model-option", "frames=4")
    assert result.returncode == 0, result.stderr
    maps = list((out / "maps").glob("*.npz"))
    assert len(maps) == 1
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["method"]) == ["saliency"]


@pytest.mark.slow
def test_app_sidebar_adds_a_release_path(tmp_path: Path) -> None:
    """A release file whose name gives its frames is added by path; one that does not says why."""
    from tests.test_app import error_texts, fresh_app

    name = "tsm_mobilenetv2_kinetics_8f"  # the cheapest release model to run on every page load
    named = tmp_path / "TSM_kinetics_RGB_mobilenetv2_shift8_blockres_avg_segment4_e100.pth"
    write_release(name, named)
    at = fresh_app()
    at.sidebar.text_input(key="checkpoint_path").input(str(named))
    at.run(timeout=300)
    assert not at.exception and not error_texts(at), error_texts(at)
    (models,) = [m for m in at.sidebar.multiselect if m.label == "Models to compare"]
    assert models.value[-1] == f"{named.stem} (tsm)"
    unnamed = write_release(name, tmp_path / "tsm_mobilenet_release.pth")
    at.sidebar.text_input(key="checkpoint_path").input(str(unnamed))
    at.run(timeout=300)
    assert not at.exception
    assert any("does not record its number of frames" in t for t in error_texts(at)), error_texts(at)


@pytest.mark.slow
def test_app_sidebar_takes_options_for_a_release_without_frames(tmp_path: Path) -> None:
    """A release whose name says nothing is added with typed options (frames, classes) and works on a
    page; a malformed option is a one-line error in the sidebar."""
    from tests.test_app import error_texts, fresh_app

    name = "tsm_mobilenetv2_kinetics_8f"
    release = write_release(name, tmp_path / "tsm_mobilenet_release.pth")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"kinetics class {i}\n" for i in range(400)))
    at = fresh_app()
    at.sidebar.text_input(key="checkpoint_options").input("frames=bad")
    at.sidebar.text_input(key="checkpoint_path").input(str(release))
    at.run(timeout=300)
    assert not at.exception
    assert any("frames='bad'" in t and "whole number" in t for t in error_texts(at)), error_texts(at)
    at.sidebar.text_input(key="checkpoint_options").input(f"frames=4 classes={labels}")
    at.sidebar.text_input(key="checkpoint_path").input(str(release) + " ")  # a change, same file
    at.run(timeout=300)
    assert not at.exception and not error_texts(at), error_texts(at)
    (models,) = [m for m in at.sidebar.multiselect if m.label == "Models to compare"]
    assert models.value[-1] == "tsm_mobilenet_release (tsm)"
    added = at.session_state["added_models"]["tsm_mobilenet_release (tsm)"]
    model = load_model(added.path)  # a workbench checkpoint now: it records what was typed
    assert model.spec.frames == 4 and model.spec.class_names[1] == "kinetics class 1"
    assert model.spec.layout.startswith("tsm")
