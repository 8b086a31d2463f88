"""The command line: real subprocesses for the user-facing error paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import workbench as wb
from workbench.cli import main
from workbench.demo import demo_checkpoints, demo_probe_dir
from workbench.probe import encode_mp4, render_clip

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m workbench ...` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A shipped demo checkpoint when present, else a fresh tiny one (same format)."""
    shipped = demo_checkpoints()
    if "gsm" in shipped:
        return shipped["gsm"]
    model = wb.build_model("gsm", backbone="resnet-tiny", num_classes=14, frames=8, input_size=48)
    return wb.save_model(model, tmp_path_factory.mktemp("ckpt") / "gsm.pt")


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for name in ("zoo", "probe-data", "predict", "train", "evaluate", "demo"):
        assert name in result.stdout


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated"])
def test_predict_bad_video_is_one_line_and_nonzero(kind: str, checkpoint: Path, tmp_path: Path) -> None:
    video = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        video.write_bytes(b"")
    elif kind == "text":
        video.write_text("this is not a video\n" * 50)
    elif kind == "truncated":
        real = next(demo_probe_dir().rglob("*.mp4"), None) or _write_clip(tmp_path / "real.mp4", 16)
        video.write_bytes(real.read_bytes()[: real.stat().st_size // 3])
    result = run_cli("predict", str(checkpoint), str(video))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and video.name in errors[0]
    assert "Traceback" not in result.stderr


def test_predict_bad_checkpoint_is_one_line(tmp_path: Path) -> None:
    clip = _write_clip(tmp_path / "clip.mp4", 16)
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x80\x04garbage")
    result = run_cli("predict", str(bad), str(clip))
    assert result.returncode == 2 and "model.pt" in result.stderr and "Traceback" not in result.stderr


def _write_clip(path: Path, frames: int) -> Path:
    import numpy as np

    pixels, _ = render_clip("move_left", np.random.default_rng(0), frames=frames, size=32)
    encode_mp4(pixels, path)
    return path


def test_short_video_warns_and_still_predicts(checkpoint: Path, tmp_path: Path, capsys) -> None:
    clip = _write_clip(tmp_path / "short.mp4", 4)
    assert main(["predict", str(checkpoint), str(clip), "--top", "2"]) == 0
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert len(out) == 2 and out[0].strip().endswith(tuple(wb.load_model(checkpoint).spec.class_names))
    # the CLI prints every warning as one line on stderr
    assert any(line.startswith("warning: ") and "4 frames" in line for line in captured.err.splitlines())


def test_predict_on_a_probe_clip_with_a_trained_model(checkpoint: Path) -> None:
    if "gsm" not in demo_checkpoints():
        pytest.fail("the demo zoo is not shipped (workbench/assets/manifest.json)")
    rows = json.loads((demo_probe_dir() / "classes.json").read_text())["classes"]
    clip = next((demo_probe_dir() / "move_right").glob("*.mp4"))
    result = run_cli("predict", str(checkpoint), str(clip), "--top", "1")
    assert result.returncode == 0
    assert result.stdout.split()[-1] == "move_right"
    assert len(rows) == 14


def test_zoo_resnet50_gsm_overhead_is_below_one_percent() -> None:
    """Acceptance: zoo table for resnet50, 8 frames, 224: gsm adds < 1% params and FLOPs over tsn."""
    from workbench.models.complexity import zoo_table

    table = zoo_table("resnet50", 8, 224, schemes=["tsn", "gsm", "tsm"], latency=False).set_index("scheme")
    assert table.loc["gsm", "params_vs_tsn"] < 1.01
    assert table.loc["gsm", "flops_vs_tsn"] < 1.01
    assert table.loc["gsm", "gflops"] > table.loc["tsn", "gflops"]  # the gate conv is counted
    assert table.loc["tsm", "flops_vs_tsn"] == 1.0  # shifts are free in FLOPs


def test_zoo_cli_formats(capsys) -> None:
    assert main(["zoo", "--backbone", "resnet-tiny", "--size", "32", "--frames", "4", "--format", "json",
                 "--repeats", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [row["scheme"] for row in data["schemes"]] == wb.available_schemes()
    assert all(row["latency_ms"] > 0 for row in data["schemes"])
    assert main(["zoo", "--backbone", "resnet-tiny", "--size", "32", "--format", "csv", "--no-latency"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == "scheme,params_M,gflops,params_vs_tsn,flops_vs_tsn"


def test_probe_data_cli_is_reproducible(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["probe-data", str(tmp_path / name), "--clips-per-class", "1", "--seed", "5",
                     "--frames", "8", "--size", "32"]) == 0
    for rel in ["labels.csv", "classes.json", *sorted(p.relative_to(tmp_path / "a").as_posix()
                                                      for p in (tmp_path / "a" / "masks").iterdir())]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
