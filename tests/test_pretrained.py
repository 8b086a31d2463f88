"""Initialisation from a torchvision-layout ImageNet ResNet state dict."""

from __future__ import annotations

import torch

import workbench as wb
from workbench.models.pretrained import load_imagenet_weights

from .conftest import randomize


def torchvision_like_resnet18(tmp_path) -> tuple[dict, str]:
    """A state dict with torchvision's resnet18 names and shapes (ours, as tsn, with a 1000-way fc)."""
    donor = randomize(wb.build_model("tsn", backbone="resnet18", num_classes=1000), seed=5)
    state = {f"module.{k}": v for k, v in donor.state_dict().items()}
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    return donor.state_dict(), str(path)


def test_2d_schemes_take_every_backbone_weight(tmp_path) -> None:
    donor, path = torchvision_like_resnet18(tmp_path)
    for scheme in ("tsn", "tsm", "gsm"):
        model = wb.build_model(scheme, backbone="resnet18", num_classes=10)
        report = load_imagenet_weights(model, path)
        assert set(report.skipped) == {"fc.weight", "fc.bias"}
        assert not report.inflated
        assert all(k.startswith("fc.") or ".gsm." in k for k in report.untouched), report.untouched
        assert torch.equal(model.state_dict()["layer3.1.conv2.weight"], donor["layer3.1.conv2.weight"])


def test_c3d_inflates_2d_kernels_over_time(tmp_path) -> None:
    donor, path = torchvision_like_resnet18(tmp_path)
    model = wb.build_model("c3d", backbone="resnet18", num_classes=10)
    report = load_imagenet_weights(model, path)
    assert "layer1.0.conv1.weight" in report.inflated and "conv1.weight" in report.inflated
    inflated = model.state_dict()["layer1.0.conv1.weight"]
    assert inflated.shape == (64, 64, 3, 3, 3)
    assert torch.allclose(inflated.sum(dim=2), donor["layer1.0.conv1.weight"], atol=1e-6)
    assert "layer1.0.bn1.running_var" in report.copied
