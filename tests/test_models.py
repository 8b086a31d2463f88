"""The scheme zoo: shapes, known answers, gradients, checkpoints."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.models.temporal import GateConv3d, GateShift, TemporalShift, shift_time

from .conftest import randomize

SCHEMES = wb.available_schemes()
BACKBONES = ["resnet-tiny", "resnet18", "resnet50"]


def test_registry_lists_every_scheme() -> None:
    # our eight, then the schemes the torchvision / MMAction2 releases bring (mc3_18, I3D, S3D)
    assert SCHEMES == ["tsn", "tsm", "gsm", "gsf", "c3d", "r2plus1d", "csn", "gst", "mc3", "i3d", "s3d"]


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_and_backbone_builds_and_round_trips(scheme: str, backbone: str, tmp_path) -> None:
    model = randomize(wb.build_model(scheme, backbone=backbone, num_classes=7, frames=8))
    x = torch.randn(2, 8, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        y = model(x)
    assert y.shape == (2, 7)
    path = wb.save_model(model, tmp_path / "m.pt")
    loaded = wb.load_model(path)
    assert not loaded.training
    assert loaded.spec == model.spec
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    with torch.inference_mode():
        assert torch.equal(loaded(x), y)


def test_tsn_is_exactly_frame_order_invariant(clip) -> None:
    model = randomize(wb.build_model("tsn", backbone="resnet-tiny", num_classes=5))
    with torch.inference_mode():
        ref = model(clip)
        for seed in range(5):
            perm = torch.randperm(8, generator=torch.Generator().manual_seed(seed))
            assert (model(clip[:, perm]) - ref).abs().max() < 1e-5
        assert (model(clip.flip(1)) - ref).abs().max() < 1e-5


@pytest.mark.parametrize("scheme", ["tsm", "gsm", "gsf", "c3d", "r2plus1d", "csn", "gst"])
def test_temporal_schemes_are_not_order_invariant(scheme: str, clip) -> None:
    model = randomize(wb.build_model(scheme, backbone="resnet-tiny", num_classes=5))
    with torch.inference_mode():
        assert (model(clip.flip(1)) - model(clip)).abs().max() > 1e-3


@pytest.mark.parametrize("backbone", ["resnet-tiny", "resnet50"])
def test_gsm_with_zero_gates_equals_its_no_shift_network(backbone: str, clip) -> None:
    gsm = randomize(wb.build_model("gsm", backbone=backbone, num_classes=5))
    no_shift = wb.build_model("tsn", backbone=backbone, num_classes=5).eval()
    shared = {k: v for k, v in gsm.state_dict().items() if ".gsm." not in k}
    no_shift.load_state_dict(shared, strict=True)  # every non-GSM weight is the same
    x = clip[:1, :, :, :]
    if backbone == "resnet50":
        x = torch.nn.functional.interpolate(x[0], size=64).unsqueeze(0)
    with torch.inference_mode():
        assert (gsm(x) - no_shift(x)).abs().max() > 1e-3  # random gates do shift
        for _, op in gsm.temporal_ops():
            op.conv3D.weight.zero_()
            op.conv3D.bias.zero_()
        assert (gsm(x) - no_shift(x)).abs().max() < 1e-5


def test_fresh_gsm_starts_as_its_no_shift_network() -> None:
    model = wb.build_model("gsm", backbone="resnet-tiny", num_classes=3)
    for _, op in model.temporal_ops():
        assert torch.count_nonzero(op.conv3D.weight) == 0


@pytest.mark.parametrize("fraction", [1 / 8, 1 / 4])
def test_tsm_shift_moves_exactly_the_documented_channel_fractions(fraction: float) -> None:
    frames, channels = 5, 16
    op = TemporalShift(channels, fraction)
    x = torch.arange(2 * frames * channels * 2 * 2, dtype=torch.float32).view(2 * frames, channels, 2, 2)
    y = op(x, frames=frames).view(2, frames, channels, 2, 2)
    x5 = x.view(2, frames, channels, 2, 2)
    fold = int(channels * fraction)
    # backward group: frame t holds frame t+1, last frame zero
    assert torch.equal(y[:, :-1, :fold], x5[:, 1:, :fold])
    assert torch.count_nonzero(y[:, -1, :fold]) == 0
    # forward group: frame t holds frame t-1, first frame zero
    assert torch.equal(y[:, 1:, fold : 2 * fold], x5[:, :-1, fold : 2 * fold])
    assert torch.count_nonzero(y[:, 0, fold : 2 * fold]) == 0
    # the rest is untouched
    assert torch.equal(y[:, :, 2 * fold :], x5[:, :, 2 * fold :])
    moved = (y != x5).any(dim=(0, 1, 3, 4)).float().mean().item()
    assert moved == pytest.approx(2 * fraction)


def test_fast_gate_conv_equals_a_grouped_conv3d() -> None:
    g = torch.Generator().manual_seed(3)
    fast = GateConv3d(12, groups=2)
    ref = nn.Conv3d(12, 2, 3, padding=1, groups=2)
    with torch.no_grad():
        fast.weight.copy_(torch.randn(fast.weight.shape, generator=g))
        fast.bias.copy_(torch.randn(2, generator=g))
        ref.weight.copy_(fast.weight)
        ref.bias.copy_(fast.bias)
    x = torch.randn(3, 12, 6, 7, 9, generator=g)  # (B, C, T, H, W)
    folded = x.transpose(1, 2).reshape(18, 12, 7, 9)
    fast_out = fast(folded, frames=6)  # (B, G, T, H, W), as nn.Conv3d gives it
    assert (fast_out - ref(x)).abs().max() < 1e-4
    assert fast.weight.shape == (2, 6, 3, 3, 3)  # the official conv3D.weight layout


def test_gsm_routes_gated_features_by_group() -> None:
    """Gate +1 everywhere: group 0 moves fully backward in time, group 1 forward."""
    op = GateShift(8, gate_groups=2)
    op.eval()
    with torch.no_grad():
        op.conv3D.bias.fill_(100.0)  # tanh(100) = 1
    x = torch.randn(4, 8, 3, 3)
    y = op(x, frames=4).view(1, 4, 8, 3, 3)
    x5 = x.view(1, 4, 8, 3, 3)
    assert torch.allclose(y[:, :, :4], shift_time(x5[:, :, :4], -1), atol=1e-6)
    assert torch.allclose(y[:, :, 4:], shift_time(x5[:, :, 4:], 1), atol=1e-6)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_is_differentiable_wrt_its_input(scheme: str, clip) -> None:
    model = randomize(wb.build_model(scheme, backbone="resnet-tiny", num_classes=5))
    x = clip.clone().requires_grad_(True)
    model(x)[:, 1].sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    assert x.grad[:, 0].abs().sum() > 0 and x.grad[:, -1].abs().sum() > 0


def test_options_are_arguments() -> None:
    model = wb.build_model("tsm", backbone="resnet-tiny", num_classes=3, temporal_stages=(3, 4),
                           shift_fraction=0.25)
    names = [n for n, _ in model.temporal_ops()]
    assert names and all(n.startswith(("layer3", "layer4")) for n in names)
    assert all(op.fold == int(op.channels * 0.25) for _, op in model.temporal_ops())
    gsm = wb.build_model("gsm", backbone="resnet-tiny", num_classes=3, gate_groups=4)
    assert all(op.conv3D.weight.shape[0] == 4 for _, op in gsm.temporal_ops())
    with pytest.raises(ValueError, match="unknown scheme"):
        wb.build_model("x3d", num_classes=3)
    with pytest.raises(ValueError, match="unknown option"):
        wb.build_model("tsm", num_classes=3, shift_div=8)


def test_gsf_channel_ratio_leaves_the_rest_untouched() -> None:
    model = randomize(wb.build_model("gsf", backbone="resnet-tiny", num_classes=3, gsf_channel_ratio=50))
    _, op = model.temporal_ops()[0]
    x = torch.randn(8, op.total_channels, 4, 4)
    y = op(x, frames=8)
    assert torch.equal(y[:, op.channels :], x[:, op.channels :])
    assert not torch.equal(y[:, : op.channels], x[:, : op.channels])


def test_2d_schemes_keep_torchvision_parameter_names() -> None:
    keys = set(wb.build_model("tsm", backbone="resnet18", num_classes=1000).state_dict())
    for key in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.weight", "layer4.1.bn2.bias", "fc.weight", "fc.bias"]:
        assert key in keys
    gsm_keys = set(wb.build_model("gsm", backbone="resnet50", num_classes=10).state_dict())
    assert "layer1.0.gsm.conv3D.weight" in gsm_keys and "layer1.0.conv3.weight" in gsm_keys


def test_bad_checkpoints_get_clear_errors(tmp_path) -> None:
    model = wb.build_model("tsn", backbone="resnet-tiny", num_classes=3)
    good = wb.save_model(model, tmp_path / "good.pt")
    with pytest.raises(wb.CheckpointError, match="no such file"):
        wb.load_model(tmp_path / "missing.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(wb.CheckpointError, match="empty"):
        wb.load_model(tmp_path / "empty.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(wb.CheckpointError, match="junk.pt"):
        wb.load_model(tmp_path / "junk.pt")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(wb.CheckpointError, match="cut.pt"):
        wb.load_model(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(wb.CheckpointError, match="not a workbench checkpoint"):
        wb.load_model(tmp_path / "foreign.pt")
    data = torch.load(good, weights_only=True)
    data["state_dict"]["fc.weight"] = torch.zeros(9, 128)
    del data["state_dict"]["fc.bias"]
    data["state_dict"]["extra.weight"] = torch.zeros(1)
    torch.save(data, tmp_path / "mismatch.pt")
    with pytest.raises(wb.CheckpointError) as err:
        wb.load_model(tmp_path / "mismatch.pt")
    text = str(err.value)
    assert "missing: fc.bias" in text and "unexpected: extra.weight" in text and "fc.weight" in text


class Payload:
    """A pickled object whose unpickling would run code."""

    def __reduce__(self):
        return (print, ("pwned",))


def test_code_carrying_pickle_is_refused_and_not_executed(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Payload()}, f)
    with pytest.raises(wb.CheckpointError, match="weights_only=False"):
        wb.load_model(path)
    assert "pwned" not in capsys.readouterr().out


def test_load_overrides(tmp_path) -> None:
    model = wb.build_model("tsm", backbone="resnet-tiny", num_classes=3, frames=8)
    path = wb.save_model(model, tmp_path / "m.pt")
    assert wb.load_model(path, frames=16).spec.frames == 16
    with pytest.raises(wb.CheckpointError, match="class names"):
        wb.load_model(path, class_names=["a"])
    with pytest.raises(wb.CheckpointError, match="not allowed"):
        wb.load_model(path, scheme="gsm")


@pytest.mark.parametrize("scheme", ["gsm", "gsf"])
def test_gated_shift_gradients_are_exact(scheme: str) -> None:
    """gradcheck (float64) through the gate, the shift and the fusion, input and gate weights."""
    model = randomize(wb.build_model(scheme, backbone="resnet-tiny", num_classes=3, frames=4))
    _, op = model.temporal_ops()[0]
    op = op.double().eval()
    x = torch.randn(2 * 4, op.channels, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: op(v, frames=4), (x,), eps=1e-6, atol=1e-6)
    weight = op.conv3D.weight
    assert torch.autograd.gradcheck(lambda w: torch.func.functional_call(op, {"conv3D.weight": w}, (x, 4)),
                                    (weight.detach().clone().requires_grad_(True),), eps=1e-6, atol=1e-6)


def test_random_bytes_are_corrupt_not_malicious(tmp_path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(wb.CheckpointError) as err:
        wb.load_model(path)
    assert "refusing" not in str(err.value) and "noise.pt" in str(err.value)


def test_code_carrying_pickle_in_torch_zip_format_is_refused(tmp_path, capsys) -> None:
    path = tmp_path / "evil_zip.pt"
    torch.save({"state_dict": Payload()}, path)  # torch's own zip container, protocol 2
    with pytest.raises(wb.CheckpointError, match="refusing"):
        wb.load_model(path)
    assert "pwned" not in capsys.readouterr().out
    assert wb.load_model(wb.save_model(wb.build_model("tsn", backbone="resnet-tiny", num_classes=2),
                                       tmp_path / "ok.pt")).spec.num_classes == 2


def test_spec_naming_an_unknown_scheme_is_a_checkpoint_error(tmp_path) -> None:
    path = wb.save_model(wb.build_model("tsn", backbone="resnet-tiny", num_classes=2), tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    data["spec"]["scheme"] = "x3d"
    torch.save(data, path)
    with pytest.raises(wb.CheckpointError, match="does not build"):
        wb.load_model(path)
