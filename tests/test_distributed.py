"""Multi-process batch runs under torchrun (gloo, CPU) on real probe videos and the shipped demo models:
same rows as one process, per-rank resumption after a SIGKILL, DataLoader workers, --device errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from analysis.temporal import ExperimentConfig, run_experiment
from workbench import load_model
from workbench.cli import main as cli_main
from workbench.demo import demo_checkpoints, demo_probe_dir
from workbench.device import DeviceError, resolve_amp, resolve_device
from workbench.distributed import Context, shard
from workbench.probe import write_probe_dataset

REPO = Path(__file__).resolve().parents[1]
SORT = ["model", "video_index", "perturbation", "level", "repeat"]
# one torch thread per process, as torchrun gives each rank: a 2-core machine is not oversubscribed
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def demo(scheme: str) -> Path:
    checkpoints = demo_checkpoints()
    if scheme not in checkpoints:
        pytest.fail(f"the {scheme} demo model is missing from workbench/assets")
    return checkpoints[scheme]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# torchrun starts each rank in a session of its own, hence (with the kernel's sched_autogroup) in a
# scheduling group of its own that `nice` on pytest no longer reaches. Each rank lowers its group's
# priority before it execs Python, so jobs sharing the machine keep theirs.
NICE_RANK = 'echo 19 > /proc/self/autogroup 2>/dev/null; exec "$0" "$@"'


def torchrun(processes: int) -> list[str]:
    """torchrun through this interpreter (so the venv is used), on a free rendezvous port; a rank's
    command line is `sh -c NICE_RANK python ARGS...`, the same process as `python ARGS...` after exec."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "--no-python",
            "sh", "-c", NICE_RANK, sys.executable]


def temporal_args(data: Path, out: Path) -> list[str]:
    return ["-m", "workbench", "temporal-test", "--model", str(demo("tsn")), "--model", str(demo("gsm")),
            "--data", str(data), "--out", str(out), "--perturbations", "shuffle", "reverse",
            "--permutations", "2", "--chunk-videos", "1", "--threads", "1", "--quiet", "--bootstrap", "100"]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=240)


def sorted_rows(run_dir: Path) -> pd.DataFrame:
    rows = pd.read_parquet(run_dir / "results.parquet")
    return rows.sort_values(SORT, kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real probe set: 14 classes x 1 clip, 8 frames, 32 px (14 chunks of one video)."""
    return write_probe_dataset(tmp_path_factory.mktemp("probe") / "data", 1, seed=8, frames=8, size=32,
                               progress=False)


@pytest.fixture(scope="module")
def single(probe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-process run every multi-process run must reproduce."""
    out = tmp_path_factory.mktemp("single") / "run"
    done = run([sys.executable, *temporal_args(probe, out)])
    assert done.returncode == 0, done.stderr
    return out


def test_shards_cover_every_unit_once() -> None:
    for world in (1, 2, 3, 7):
        shards = [shard(10, Context(rank, world)) for rank in range(world)]
        assert sorted(n for s in shards for n in s) == list(range(10))
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shard(5, Context(1, 2)) == [1, 3]


def test_two_ranks_give_the_single_process_rows(probe: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "two"
    done = run([*torchrun(2), *temporal_args(probe, out)])
    assert done.returncode == 0, done.stderr
    rows = sorted_rows(out)
    assert len(rows) == 14 * 2 * 4  # videos x models x (original + 2 shuffles + reverse)
    pd.testing.assert_frame_equal(rows, sorted_rows(single), check_exact=True)
    # merged in chunk order: the very same files as one process writes
    assert (out / "results.parquet").read_bytes() == (single / "results.parquet").read_bytes()
    assert (out / "summary.csv").read_text() == (single / "summary.csv").read_text()
    assert len(list((out / "parts").glob("part-*.parquet"))) == 14
    assert done.stdout.count("wrote ") == 1  # rank 0 alone prints
    info = json.loads((out / "run.json").read_text())
    assert info["execution"]["world_size"] == 2 and info["status"] == "complete"
    assert [m["rank"] for m in info["peak_memory"]["ranks"]] == [0, 1]
    assert all(m["max_rss_mib"] > 50 for m in info["peak_memory"]["ranks"])  # torch alone is more
    single_info = json.loads((single / "run.json").read_text())
    assert info["identity"] == single_info["identity"]  # so either may resume the other


def rank_pid(parent: int, rank: int) -> int | None:
    """The pid of the worker with RANK=`rank` among the children of torchrun's process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.slow
def test_a_rank_killed_midway_resumes_to_the_same_rows(probe: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    launcher = subprocess.Popen([*torchrun(2), *temporal_args(probe, out)], cwd=REPO, env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    # chunk 1 is rank 1's first: kill rank 1 with SIGKILL as soon as it has written it
    while not (out / "parts" / "part-000001.parquet").is_file():
        assert launcher.poll() is None, "the run ended before a rank could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pid = rank_pid(launcher.pid, 1)
    assert pid is not None, "rank 1 not found among torchrun's children"
    os.kill(pid, signal.SIGKILL)
    assert launcher.wait(timeout=120) != 0  # torchrun reports the lost rank and stops the other
    done = {p.name: p.stat().st_mtime_ns for p in (out / "parts").glob("part-*.parquet")}
    assert 1 <= len(done) < 14, f"{len(done)} parts written: the kill did not land midway"
    assert not (out / "results.parquet").exists(), "the killed run must not have merged its results"

    again = run([*torchrun(2), *temporal_args(probe, out)])
    assert again.returncode == 0, again.stderr
    # each rank kept what it had finished and did only the rest
    assert {name: (out / "parts" / name).stat().st_mtime_ns for name in done} == done
    pd.testing.assert_frame_equal(sorted_rows(out), sorted_rows(single), check_exact=True)
    assert (out / "results.parquet").read_bytes() == (single / "results.parquet").read_bytes()
    assert json.loads((out / "run.json").read_text())["resumed"] == 1


def test_decoding_workers_do_not_change_the_rows(probe: Path, single: Path, tmp_path: Path) -> None:
    models = {"tsn": load_model(demo("tsn")), "gsm": load_model(demo("gsm"))}
    config = ExperimentConfig(perturbations=("shuffle", "reverse"), permutations=2, chunk_videos=1,
                              bootstrap=100)
    result = run_experiment(models, probe, config, tmp_path / "workers", workers=2)
    assert result.run["execution"]["workers"] == 2
    written = (tmp_path / "workers" / "results.parquet").read_bytes()
    assert written == (single / "results.parquet").read_bytes()


def attribute_args(out: Path) -> list[str]:
    return ["-m", "workbench", "attribute", "--data", str(demo_probe_dir()), "--model", str(demo("tsn")),
            "--model", str(demo("gsm")), "--methods", "saliency", "--max-clips", "2", "--chunk-clips", "1",
            "--bootstrap", "100", "--out", str(out)]


@pytest.mark.slow
def test_attribute_data_on_two_ranks_gives_the_single_process_rows(tmp_path: Path) -> None:
    one = run([sys.executable, *attribute_args(tmp_path / "one")])
    assert one.returncode == 0, one.stderr
    two = run([*torchrun(2), *attribute_args(tmp_path / "two")])
    assert two.returncode == 0, two.stderr
    a, b = (pd.read_parquet(tmp_path / name / "results.parquet") for name in ("one", "two"))
    assert len(a) == 2 * 2 and set(a["method"]) == {"saliency"}
    # every metric identical; only the measured seconds per map differ
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"), check_exact=True)
    info = json.loads((tmp_path / "two" / "run.json").read_text())
    assert info["execution"]["world_size"] == 2 and len(info["peak_memory"]["ranks"]) == 2
    assert len(list((tmp_path / "two" / "parts").glob("part-*.parquet"))) == 2


def test_device_resolution_on_this_machine() -> None:
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    assert resolve_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else cpu)
    with pytest.raises(DeviceError, match="bad device"):
        resolve_device("tpu")
    with pytest.raises(DeviceError, match="needs a CUDA device"):
        resolve_amp("bf16", cpu)
    assert resolve_amp("off", cpu) is None
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            resolve_device("cuda:0")


@pytest.mark.parametrize(("extra", "message"), [
    (["--device", "cpu", "--amp", "bf16"], "--amp bf16 needs a CUDA device"),
    (["--device", "gpu"], "bad device 'gpu'"),
    (["--workers", "-1"], "--workers must be >= 0"),
])
def test_temporal_device_errors_are_one_line(probe: Path, tmp_path: Path, capsys, extra, message) -> None:
    args = temporal_args(probe, tmp_path / "run")[3:]
    assert cli_main(["temporal-test", *args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()  # refused before any work


def test_device_cuda_runs_on_a_gpu_and_is_refused_without_one(probe: Path, tmp_path: Path, capsys) -> None:
    args = temporal_args(probe, tmp_path / "run")[3:]
    code = cli_main(["temporal-test", *args, "--device", "cuda", "--perturbations", "reverse"])
    if torch.cuda.is_available():
        assert code == 0 and json.loads((tmp_path / "run" / "run.json").read_text())["execution"]["device"] \
            == "cuda:0"
    else:
        assert code == 2
        assert capsys.readouterr().err.strip().startswith("error: --device cuda: torch sees no CUDA GPU")


def test_attribute_refuses_amp(tmp_path: Path, capsys) -> None:
    assert cli_main(["attribute", *attribute_args(tmp_path / "run")[3:], "--amp", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --amp is for inference-only commands: attribution needs full-precision gradients"


def test_channels_last_keeps_every_demo_model_s_outputs() -> None:
    """What prepare_model does on CUDA, checked on the CPU: no scheme breaks, the logits stay put."""
    from workbench.device import channels_last
    from workbench.video import load_clip

    video = next(demo_probe_dir().glob("*/*.mp4"))
    checkpoints = demo_checkpoints()
    assert len(checkpoints) == 8, "the demo zoo is incomplete"
    for scheme, path in checkpoints.items():
        model = load_model(path)
        clip = load_clip(video, model.spec)
        with torch.inference_mode():
            before = model(clip)
            after = channels_last(model)(clip)
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Conv3d)]
        layout = {torch.nn.Conv2d: torch.channels_last, torch.nn.Conv3d: torch.channels_last_3d}
        assert convs and all(m.weight.is_contiguous(memory_format=layout[type(m)]) for m in convs), scheme
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4, msg=scheme)
