"""analysis.hooks: capture and replace module outputs on real models; hooks always removed."""

from __future__ import annotations

import pytest
import torch

from analysis.hooks import capture, replace_outputs, select_modules
from tests.conftest import randomize
from workbench import build_model
from workbench.models.temporal import TemporalOp, TemporalShift


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def _tsm() -> torch.nn.Module:
    return randomize(build_model("tsm", backbone="resnet-tiny", num_classes=5, frames=4), seed=3)


def test_capture_by_type_records_every_temporal_op_and_removes_hooks() -> None:
    model = _tsm()
    clip = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    names = [n for n, _ in model.temporal_ops()]
    with torch.no_grad(), capture(model, types=TemporalOp, inputs=True) as seen:
        assert _hook_count(model) == len(names)
        model(clip)
    assert _hook_count(model) == 0
    assert sorted(seen.outputs) == sorted(names) == sorted(seen.inputs)
    # the recorded output is what the module computes from the recorded input
    name = names[1]
    op = dict(model.named_modules())[name]
    assert torch.equal(op(seen.inputs[name], frames=clip.shape[1]), seen.outputs[name])
    # and TSM really moved channels: output differs from input on the shifted fold only
    moved = (seen.outputs[name] != seen.inputs[name]).flatten(2).any(-1).any(0)
    assert moved[: 2 * op.fold].any() and not moved[2 * op.fold :].any()


def test_capture_by_name_and_hooks_removed_on_error() -> None:
    model = _tsm()
    with pytest.raises(RuntimeError, match="boom"), capture(model, ["layer1.0.conv1", "fc"]):
        assert _hook_count(model) == 2
        raise RuntimeError("boom")
    assert _hook_count(model) == 0
    with pytest.raises(KeyError, match="nope"):
        select_modules(model, ["nope"])
    with pytest.raises(ValueError, match="no module"):
        with capture(model, types=torch.nn.LSTM):
            pass


def test_capture_is_a_copy_not_a_view_of_inplace_buffers() -> None:
    model = _tsm()
    clip = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    # bn1's output is overwritten in place by the inplace ReLU after it: the copy must keep negatives
    with torch.no_grad(), capture(model, ["bn1"]) as seen:
        model(clip)
    assert (seen.outputs["bn1"] < 0).any()


def test_replace_outputs_changes_the_forward_then_restores_it() -> None:
    model = _tsm()
    clip = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = model(clip)
        with replace_outputs(model, {"fc": lambda m, a, out: torch.full_like(out, 7.0)}):
            forced = model(clip)
        after = model(clip)
    assert torch.equal(forced, torch.full_like(forced, 7.0))
    assert torch.equal(before, after) and _hook_count(model) == 0
    # replacing every shift by identity gives the TSN network with the same weights
    shifts = {n: (lambda m, a, out: a[0]) for n, m in model.named_modules() if isinstance(m, TemporalShift)}
    tsn = build_model("tsn", backbone="resnet-tiny", num_classes=5, frames=4)
    tsn.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad(), replace_outputs(model, shifts):
        assert torch.allclose(model(clip), tsn.eval()(clip), atol=1e-5)
