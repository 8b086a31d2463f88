"""Our fast GSM / GSF equal the literal nn.Conv3d form of the papers: outputs, input and weight gradients."""

from __future__ import annotations

import zlib

import pytest
import torch
from torch import nn

from tests.gsm_reference import Conv3dGateShift
from workbench.models.temporal import SLICED_FOLD_POSITIONS, GateShift, GateShiftFuse

VARIANTS = {
    "gsm": lambda: GateShift(16, 2),
    "gsm-interleaved": lambda: GateShift(16, 2, interleave=True),
    "gsm-4-groups": lambda: GateShift(16, 4),
    "gsf": lambda: GateShiftFuse(16, 2),
    "gsf-half-the-channels": lambda: GateShiftFuse(24, 2, channel_ratio=50, interleave=True),
}
# below and above the frame size where the gate conv's window sums switch from col2im to slices
SIZES = [(5, 6), (12, 13)]
assert SIZES[0][0] * SIZES[0][1] < SLICED_FOLD_POSITIONS <= SIZES[1][0] * SIZES[1][1]


def randomized(op: nn.Module, dtype: torch.dtype, seed: int) -> nn.Module:
    """Random weights and BN statistics; gates large enough to move a good share of the features."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in op.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=g)
                if name.endswith("running_var"):
                    values = values.abs() + 0.5
                if "conv3D.weight" in name:
                    values = values * 0.3
                tensor.copy_(values)
    return op.to(dtype)


def grads(op: nn.Module, x: torch.Tensor, probe: torch.Tensor, frames: int) -> dict[str, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    y = op(x, frames=frames)
    named = dict(op.named_parameters())
    found = torch.autograd.grad((y * probe).sum(), [x, *named.values()])
    return {"output": y.detach(), "input": found[0], **dict(zip(named, found[1:]))}


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("frames, batch", [(2, 1), (3, 2), (8, 1)])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("training", [False, True])
def test_fast_module_equals_the_literal_conv3d_form(
    variant: str, frames: int, batch: int, size: tuple[int, int], dtype: torch.dtype, tolerance: float,
    training: bool,
) -> None:
    seed = zlib.crc32(repr((variant, frames, batch, size)).encode())
    ours = randomized(VARIANTS[variant](), dtype, seed).train(training)
    reference = Conv3dGateShift.like(ours)
    g = torch.Generator().manual_seed(seed + 1)
    width = getattr(ours, "total_channels", ours.channels)
    x = torch.randn(batch * frames, width, *size, generator=g).to(dtype)
    probe = torch.randn(batch * frames, width, *size, generator=g).to(dtype)
    if not training:
        with torch.inference_mode():  # the forward without autograd's bookkeeping takes other paths
            plain = ours(x, frames=frames)
    fast, slow = grads(ours, x, probe, frames), grads(reference, x, probe, frames)
    assert fast.keys() == slow.keys()
    if not training:
        assert torch.allclose(plain, fast["output"], rtol=tolerance, atol=0)
    if training:  # BatchNorm2d on folded frames keeps BatchNorm3d's running statistics
        for name, buffer in reference.bn.state_dict().items():
            assert torch.allclose(ours.bn.state_dict()[name], buffer, rtol=tolerance, atol=0), name
    clip = x[:, : ours.channels].reshape(batch, frames, ours.channels, *size).transpose(1, 2)
    gates = reference.conv3D(reference.bn.eval()(clip).relu()).tanh()
    assert gates.abs().mean() > 0.2  # the gates do move features: a real test of the shift
    for key in fast:
        # a bias gradient sums a layer's output gradients, with cancellation: its scale is the
        # layer's largest gradient entry (weight or bias), not its own sum
        layer = key.rpartition(".")[0] or key
        scale = max(slow[k].abs().max() for k in slow if (k.rpartition(".")[0] or k) == layer)
        error = ((fast[key] - slow[key]).abs().max() / scale.clamp_min(1e-30)).item()
        assert error < tolerance, f"{key}: relative error {error:.2e}"
