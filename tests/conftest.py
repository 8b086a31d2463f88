"""Shared fixtures: small seeded models and clips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture
def clip() -> torch.Tensor:
    """A seeded (2, 8, 3, 48, 48) clip."""
    return torch.randn(2, 8, 3, 48, 48, generator=torch.Generator().manual_seed(0))


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and BN statistic non-trivial seeded values (gates included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif t.dim() == 1:
                t.copy_(1.0 + 0.1 * torch.randn(t.shape, generator=g) if name.endswith("weight") else
                        0.1 * torch.randn(t.shape, generator=g))
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_probe(tmp_path_factory) -> Path:
    """A real probe dataset on disk: 3 clips per class, 16 frames, 32x32 px."""
    from workbench.probe import write_probe_dataset

    return write_probe_dataset(tmp_path_factory.mktemp("probe") / "data", 3, seed=11, frames=16, size=32,
                               progress=False)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One torch thread for the test: on a busy 2-core machine two threads wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
