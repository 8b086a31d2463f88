"""The opt-in fused GSM kernel: the eager module's outputs; the eager path wherever analyses look inside."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import randomize
from workbench import build_model
from workbench.models import fused_gsm
from workbench.models.temporal import GateShift, GateShiftFuse

pytestmark = pytest.mark.slow  # the first test here builds the kernel (about a minute on 2 cores)


@pytest.fixture(scope="module")
def kernel() -> None:
    """The kernel, built here (this machine has g++ and ninja; a build failure fails the tests)."""
    fused_gsm.enable()
    fused_gsm.disable()


def gate_shift(channels: int, interleave: bool = False, seed: int = 0) -> GateShift:
    module = GateShift(channels, interleave=interleave)
    return randomize(module, seed)


@pytest.mark.parametrize(("channels", "size", "interleave"), [(64, 28, False), (32, 7, True), (96, 4, False)])
def test_the_kernel_gives_the_eager_modules_output(kernel, channels, size, interleave) -> None:
    module = gate_shift(channels, interleave)
    x = torch.randn(2 * 8, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        with fused_gsm.using(False):
            eager = module(x, 8)
        with fused_gsm.using(True):
            fused = module(x, 8)
    assert not torch.equal(eager, x)  # the gates moved something
    torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-5)


def test_a_whole_gsm_network_gives_the_same_logits_and_the_kernel_is_off_again_after(kernel, clip) -> None:
    model = randomize(build_model("gsm", backbone="resnet-tiny", num_classes=5, frames=8, input_size=48))
    with torch.inference_mode():
        eager = model(clip)
        with fused_gsm.using():
            assert fused_gsm.enabled()
            fused = model(clip)
    assert not fused_gsm.enabled()
    torch.testing.assert_close(fused, eager, rtol=1e-4, atol=1e-5)


def test_hooks_gradients_and_training_take_the_eager_path(kernel) -> None:
    """Analyses read gates through hooks and need gradients: there the kernel must stand aside."""
    module = gate_shift(32)
    x = torch.randn(8, 32, 6, 6, generator=torch.Generator().manual_seed(2))
    seen = []
    handle = module.gate.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with fused_gsm.using(), torch.inference_mode():
        module(x, 8)
    handle.remove()
    assert len(seen) == 1 and seen[0].shape == (1, 2, 8, 6, 6)  # the gates, as the eager path makes them
    with fused_gsm.using():
        assert not fused_gsm.eligible(module, x)  # gradients on: autograd needs the eager ops
        xi = x.clone().requires_grad_(True)
        module(xi, 8).sum().backward()
        assert xi.grad is not None and module.conv3D.weight.grad is not None
        with torch.inference_mode():
            assert fused_gsm.eligible(module, x)
            module.train()
            assert not fused_gsm.eligible(module, x)  # batch statistics: not the kernel's folded BN


def test_gsf_keeps_its_own_route(kernel) -> None:
    module = randomize(GateShiftFuse(32))
    x = torch.randn(8, 32, 5, 5, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        eager = module(x, 8)
        with fused_gsm.using():
            assert torch.equal(module(x, 8), eager)
