"""Memory budgets: sizes, measured footprints, batch sizes that shrink with the budget, results that do not
depend on the batch, refusal up front, the CLI flag and the app setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import workbench as wb
from analysis.attribution import attribute, deletion_insertion
from analysis.temporal import ExperimentConfig, run_experiment
from tests.conftest import randomize
from tests.test_temporal import fresh_model
from workbench.allocator import maps_large_blocks
from workbench.cli import main
from workbench.errors import MemoryBudgetError, OptionError
from workbench.models.memory import (
    HEAP_BLOCK_BYTES,
    PASS_SLACK,
    Budget,
    measure_footprint,
    parse_size,
    resident_bytes,
)

ROOT = Path(__file__).resolve().parents[1]
FRAMES, SIZE = 4, 32
RTOL, ATOL = 1e-4, 1e-7  # CPU kernels round differently per batch size


def tiny(scheme: str = "gsm", seed: int = 0, frames: int = FRAMES, size: int = SIZE) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = wb.build_model(scheme, backbone="resnet-tiny", num_classes=5, frames=frames, input_size=size)
    return randomize(model, seed)


def job_budget(model: torch.nn.Module, items: float, backward: bool, inputs_per_item: float = 1.0) -> Budget:
    """A budget for the job's own memory that holds about `items` items per pass."""
    one = measure_footprint(model).job_bytes(backward, 1, inputs_per_item) - PASS_SLACK
    return Budget(int(PASS_SLACK + items * one), held=0)


@pytest.mark.parametrize(("text", "size"), [
    ("2GiB", 2 * 2**30), ("512MiB", 512 * 2**20), ("512MB", 512 * 10**6), ("4g", 4 * 2**30),
    ("1.5GiB", int(1.5 * 2**30)), ("6000mb", 6 * 10**9), ("1024", 1024), (" 3 GiB ", 3 * 2**30),
])
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "0", "-1GiB", "2 parsecs", "1e9", "GiB"])
def test_bad_sizes_are_option_errors_naming_the_text(text: str) -> None:
    with pytest.raises(OptionError, match="bad memory size"):
        parse_size(text)


def test_footprint_is_measured_and_grows_with_the_input() -> None:
    model = tiny()
    small = measure_footprint(model)
    assert small is measure_footprint(model)  # traced once per model and shape
    assert 0 < small.forward_bytes < small.backward_bytes
    assert small.clip_bytes == 4 * FRAMES * 3 * SIZE * SIZE
    longer = measure_footprint(model, (2 * FRAMES, 3, SIZE, SIZE))
    # activations scale with the frames; the traced peak also holds a few fixed-size tensors
    assert longer.backward_bytes == pytest.approx(2 * small.backward_bytes, rel=0.1)
    assert "resnet-tiny gsm 4x32" == small.model


def test_batch_sizes_shrink_with_the_budget_and_never_exceed_the_work() -> None:
    model = tiny()
    footprint = measure_footprint(model)
    sizes = [job_budget(model, items, True).batch(footprint, True, 32) for items in (64, 16, 4, 1.5)]
    assert sizes == [32, 16, 4, 1]
    forward = [job_budget(model, items, True).batch(footprint, False, 1000) for items in (16, 4)]
    assert forward[0] > 16 and forward[1] > 4  # a forward costs less than a forward+backward
    assert forward[0] > forward[1]


@pytest.mark.skipif(not maps_large_blocks(), reason="glibc's malloc at its defaults only")
def test_cpu_batches_stop_where_the_largest_tensor_outgrows_glibcs_reused_blocks() -> None:
    model = tiny(frames=8, size=112)  # its largest tensor: 5.2 MiB a clip
    footprint = measure_footprint(model)
    outputs: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.untyped_storage().nbytes()))
             for m in model.modules() if not list(m.children())]
    with torch.inference_mode():
        model(torch.randn(1, 8, 3, 112, 112))
    for hook in hooks:
        hook.remove()
    assert footprint.largest_tensor(False) >= max(outputs) > 2**20  # the trace sees the real pass's largest
    cap = HEAP_BLOCK_BYTES // footprint.largest_tensor(False)
    assert 1 < cap < 100
    assert Budget(64 * 2**30, held=0).batch(footprint, False, 1000) == cap  # a huge budget: the cap decides
    assert Budget(64 * 2**30, held=0).batch(footprint, False, 2) == 2


def test_work_that_cannot_fit_at_batch_1_is_refused_saying_what_would_fit() -> None:
    model = tiny()
    with pytest.raises(MemoryBudgetError) as err:
        job_budget(model, 0.5, True).batch(measure_footprint(model), True, 32, what="Integrated Gradients")
    message = str(err.value)
    assert "\n" not in message
    assert "Integrated Gradients on resnet-tiny gsm 4x32 needs ~" in message and "at batch 1" in message
    assert "--max-memory 256MiB" in message  # the next size that holds it
    clip = torch.randn(1, FRAMES, 3, SIZE, SIZE)
    with pytest.raises(MemoryBudgetError, match="Saliency on resnet-tiny gsm"):
        attribute(model, clip, "saliency", memory=job_budget(model, 0.5, True))
    with pytest.raises(MemoryBudgetError):  # a whole-process budget below what the process holds
        attribute(model, clip, "saliency", memory=resident_bytes() // 2)


@pytest.mark.parametrize(("method", "option", "opts"), [
    ("integrated_gradients", "internal_batch_size", {"steps": 8}),
    ("smoothgrad", "batch", {"samples": 6}),
    ("occlusion", "perturbations_per_eval", {"window": 8, "stride": 8}),
    ("temporal_ablation", "perturbations_per_eval", {}),
])
def test_maps_do_not_depend_on_the_batch_the_budget_gives(method: str, option: str, opts: dict) -> None:
    model = tiny()
    clip = torch.randn(1, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    results = {}
    for name, budget in (("roomy", None), ("tight", job_budget(model, 2.5, method in ("integrated_gradients",
                                                                                     "smoothgrad"), 3.0))):
        torch.manual_seed(0)  # SmoothGrad's noise
        results[name] = attribute(model, clip, method, target=1, memory=budget, **opts)
    roomy, tight = results["roomy"].options[option], results["tight"].options[option]
    assert tight < roomy and tight <= 2, (roomy, tight)
    np.testing.assert_allclose(results["tight"].map, results["roomy"].map, rtol=RTOL, atol=ATOL)
    if results["roomy"].delta is not None:
        assert results["tight"].delta == pytest.approx(results["roomy"].delta, rel=1e-3, abs=1e-6)


def test_curves_do_not_depend_on_the_batch() -> None:
    model = tiny("tsm")
    clip = torch.randn(1, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    saliency = attribute(model, clip, "saliency", target=2).map
    for unit in ("pixel", "frame"):
        roomy = deletion_insertion(model, clip, saliency, 2, steps=8, unit=unit)
        tight = deletion_insertion(model, clip, saliency, 2, steps=8, unit=unit,
                                   memory=job_budget(model, 1.5, False, 2.0))
        np.testing.assert_allclose(tight.deletion, roomy.deletion, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(tight.insertion, roomy.insertion, rtol=RTOL, atol=ATOL)
        assert tight.deletion[0] == pytest.approx(tight.insertion[-1], rel=1e-5)  # both: the clip itself


def test_temporal_rows_do_not_depend_on_the_batch(tiny_probe: Path) -> None:
    model = fresh_model("gsm", size=32)
    config = ExperimentConfig(perturbations=("reverse", "shuffle"), permutations=2, bootstrap=50,
                              chunk_videos=8)
    roomy = run_experiment({"gsm": model}, tiny_probe, config)
    chunk = 2 * config.chunk_videos * measure_footprint(model).clip_bytes
    budget = Budget(job_budget(model, 3.5, False).total + chunk, held=0)
    tight = run_experiment({"gsm": model}, tiny_probe, config, memory=budget)
    assert roomy.run["execution"]["batch_sizes"] == [64]
    assert tight.run["execution"]["batch_sizes"] == [3]
    assert list(tight.results["order"]) == list(roomy.results["order"])
    np.testing.assert_allclose(tight.results["p_true"], roomy.results["p_true"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(tight.results["kl"], roomy.results["kl"], rtol=1e-3, atol=1e-6)


def test_estimate_bounds_the_measured_peak_of_a_real_pass() -> None:
    """A fresh process: VmHWM growth of a batch-4 forward+backward at 112 px stays under the estimate."""
    code = """
import re, torch, workbench as wb
from workbench.models.memory import measure_footprint
def kib(key):
    return int(re.search(rf"{key}:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
model = wb.build_model("gsm", backbone="resnet18", num_classes=10, frames=4, input_size=112).eval()
estimate = measure_footprint(model).job_bytes(True, 4, 1.0)
clip = torch.randn(4, 4, 3, 112, 112, requires_grad=True)
with torch.inference_mode():
    model(clip[:1, :, :, :32, :32].detach())
before = kib("VmRSS")
torch.autograd.grad(model(clip)[:, 0].sum(), clip)
print(kib("VmHWM") - before, estimate)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    measured, estimate = (int(v) for v in out.stdout.split())
    assert 0 < measured <= estimate, (measured, estimate)
    assert estimate < 2 * measured + PASS_SLACK  # and not uselessly loose


def test_cli_flag_parses_and_bad_sizes_are_one_line(tmp_path: Path, capsys) -> None:
    model = tiny("tsn", frames=8, size=32)
    checkpoint = wb.save_model(model, tmp_path / "tsn.pt")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(checkpoint), str(tmp_path / "v.mp4"), "--max-memory", "lots"])
    assert exit_info.value.code == 2
    assert "argument --max-memory: bad memory size 'lots'" in capsys.readouterr().err


def test_cli_refuses_up_front_with_what_would_fit(tiny_probe: Path, tmp_path: Path, capsys) -> None:
    model = tiny("tsn", frames=8, size=32)
    checkpoint = wb.save_model(model, tmp_path / "tsn.pt")
    video = next(tiny_probe.rglob("*.mp4"))
    assert main(["predict", str(checkpoint), str(video), "--max-memory", "64MiB"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: a forward pass on resnet-tiny tsn 8x32 needs ~")
    assert "--max-memory" in err[0]
    assert main(["predict", str(checkpoint), str(video), "--max-memory", "8GiB"]) == 0
    out = tmp_path / "run"
    assert main(["attribute", str(video), "--model", str(checkpoint), "--methods", "saliency",
                 "--out", str(out), "--max-memory", "100MB"]) == 2
    assert "error: Saliency on resnet-tiny tsn 8x32 needs ~" in capsys.readouterr().err


def test_app_memory_setting_changes_the_batch() -> None:
    """The sidebar's memory per analysis sets the Temporal page's clips per pass; a bad size is an error."""
    from tests.test_temporal_page import open_page

    at = open_page(["tsn"])
    at.multiselect(key="temporal_perturbations").set_value(["reverse"])
    at.number_input(key="temporal_permutations").set_value(1)
    batches = {}
    for memory in ("4GiB", "120MiB"):
        at.sidebar.text_input(key="analysis_memory").set_value(memory).run()
        at.button(key="temporal_run").click().run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        batches[memory] = at.session_state["temporal_result"][1].run["execution"]["batch_sizes"]
    assert batches["4GiB"] == [64]
    assert 1 <= batches["120MiB"][0] < 16
    at.sidebar.text_input(key="analysis_memory").set_value("lots").run()
    assert any("bad memory size 'lots'" in e.value for e in at.sidebar.error)
