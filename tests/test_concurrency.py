"""A shared model is read-only: several threads run one instance (as the app's sessions do) and each gets
the result it gets alone, whatever the others run at the same time (other clip lengths, gate capture,
interventions, Captum methods that hook the model)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch

from analysis.attribution import attribute
from analysis.gates import capture_gates, intervention_table, run_intervened
from tests.conftest import randomize
from workbench import build_model

ROUNDS = 6


def tiny(scheme: str, frames: int = 8) -> torch.nn.Module:
    return randomize(build_model(scheme, backbone="resnet-tiny", num_classes=6, frames=frames, input_size=24),
                     seed=4)


def clip(frames: int, seed: int) -> torch.Tensor:
    return torch.randn(1, frames, 3, 24, 24, generator=torch.Generator().manual_seed(seed))


def run_together(jobs: dict[str, Callable[[], Any]], rounds: int = ROUNDS) -> dict[str, list[Any]]:
    """Every job `rounds` times in its own thread, all started at once; their results (or errors)."""
    results: dict[str, list[Any]] = {name: [] for name in jobs}
    start = threading.Barrier(len(jobs))

    def work(name: str) -> None:
        start.wait()
        for _ in range(rounds):
            try:
                results[name].append(jobs[name]())
            except Exception as err:  # recorded, so the assertion shows what went wrong in which thread
                results[name].append(err)

    threads = [threading.Thread(target=work, args=(name,)) for name in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to the kernels' rounding (threads may split a convolution differently)."""
    return a.shape == b.shape and bool(((a - b).abs() <= 1e-5 * (1 + b.abs().max())).all())


@pytest.mark.parametrize("scheme", ["tsm", "gsm", "gsf"])
def test_one_model_runs_clips_of_different_lengths_from_several_threads(scheme: str) -> None:
    model = tiny(scheme)
    clips = {frames: clip(frames, seed=frames) for frames in (4, 8, 12)}
    with torch.inference_mode():
        alone = {frames: model(x) for frames, x in clips.items()}
    jobs = {f"{frames} frames": (lambda x=x: model(x).detach()) for frames, x in clips.items()}
    with torch.inference_mode():
        together = run_together(jobs)
    for frames in clips:
        got = together[f"{frames} frames"]
        assert all(isinstance(y, torch.Tensor) and close(y, alone[frames]) for y in got), (frames, got[:1])
    assert model.frames == 8  # nothing on the model followed the clips


def test_predictions_stay_right_while_others_capture_gates_and_intervene() -> None:
    model = tiny("gsm")
    x, y = clip(8, 1), clip(8, 2)
    with torch.no_grad():
        alone = model(x)
    gates_alone = [layer.gates for layer in capture_gates(model, y).layers]
    zero_alone = run_intervened(model, y, [n for n, _ in model.temporal_ops()], "zero")
    table_alone = intervention_table(model, y, per_layer=False)
    with torch.no_grad():
        together = run_together({
            "predict": lambda: model(x).detach(),
            "capture": lambda: [layer.gates for layer in capture_gates(model, y).layers],
            "zero gates": lambda: run_intervened(model, y, [n for n, _ in model.temporal_ops()], "zero"),
            "interventions": lambda: intervention_table(model, y, per_layer=False),
        }, rounds=8)
    assert all(isinstance(p, torch.Tensor) and close(p, alone) for p in together["predict"])
    assert all(isinstance(g, list) and all(close(a, b) for a, b in zip(g, gates_alone))
               for g in together["capture"])
    assert all(isinstance(z, torch.Tensor) and close(z, zero_alone) for z in together["zero gates"])
    for table in together["interventions"]:
        assert not isinstance(table, Exception), table
        assert (table["predicted"] == table_alone["predicted"]).all()
        assert ((table["probability"] - table_alone["probability"]).abs() < 1e-5).all()
    # the shared model carries no hook afterwards, and its gates were never forced
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
    with torch.no_grad():
        assert close(model(x), alone)


def test_captum_methods_that_hook_the_model_leave_others_alone() -> None:
    model = tiny("gsm")
    x, y = clip(8, 3), clip(8, 4)
    with torch.no_grad():
        alone = model(x)
    guided = attribute(model, y, "guided_backprop", target=1).map
    cam = attribute(model, y, "gradcam", target=1).map
    together = run_together({
        "predict": lambda: model(x).detach(),
        "guided": lambda: attribute(model, y, "guided_backprop", target=1).map,
        "gradcam": lambda: attribute(model, y, "gradcam", target=1).map,
    })
    assert all(isinstance(p, torch.Tensor) and close(p, alone) for p in together["predict"])
    for name, reference in (("guided", guided), ("gradcam", cam)):
        assert all(not isinstance(m, Exception) and close(torch.from_numpy(m), torch.from_numpy(reference))
                   for m in together[name]), name
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
