"""The trainer on a real (tiny) probe dataset: one epoch, determinism, resume after interruption."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import workbench as wb
from workbench import train as train_module
from workbench.train import TrainConfig, state_path, train_model


def config(data: Path, out: Path, epochs: int = 1, scheme: str = "gsm") -> TrainConfig:
    return TrainConfig(scheme=scheme, data=str(data), out=str(out), backbone="resnet-tiny", frames=4,
                       size=32, epochs=epochs, batch_size=8, seed=3)


def test_one_epoch_writes_a_loadable_checkpoint_with_history(tiny_probe: Path, tmp_path: Path) -> None:
    result = train_model(config(tiny_probe, tmp_path / "m.pt"), progress=False)
    model = wb.load_model(tmp_path / "m.pt")
    assert model.spec.class_names[:2] == ["move_left", "move_right"]
    assert model.spec.mirror_of["move_left"] == "move_right"
    assert model.spec.class_kinds["move_left"] == "temporal"
    assert model.spec.input_size == 32 and model.spec.frames == 4
    assert len(model.history) == 1 and set(model.history[0]) >= {"train_loss", "val_acc", "lr"}
    assert 0 <= result["best_val_acc"] <= 1
    assert "python -m workbench train --scheme gsm" in model.extra["command"]
    assert not state_path(tmp_path / "m.pt").exists()  # finished runs leave no state behind


def test_training_is_deterministic_with_a_seed(tiny_probe: Path, tmp_path: Path) -> None:
    train_model(config(tiny_probe, tmp_path / "a.pt", scheme="tsm"), progress=False)
    train_model(config(tiny_probe, tmp_path / "b.pt", scheme="tsm"), progress=False)
    a, b = wb.load_model(tmp_path / "a.pt"), wb.load_model(tmp_path / "b.pt")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


def test_interrupted_training_resumes_to_the_same_result(
    tiny_probe: Path, tmp_path: Path, monkeypatch
) -> None:
    train_model(config(tiny_probe, tmp_path / "full.pt", epochs=2), progress=False)
    calls = {"n": 0}
    real_accuracy = train_module.accuracy

    def interrupt_in_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed during epoch 2's validation
        return real_accuracy(*args, **kwargs)

    monkeypatch.setattr(train_module, "accuracy", interrupt_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_model(config(tiny_probe, tmp_path / "cut.pt", epochs=2), progress=False)
    assert state_path(tmp_path / "cut.pt").exists()
    monkeypatch.setattr(train_module, "accuracy", real_accuracy)
    train_model(config(tiny_probe, tmp_path / "cut.pt", epochs=2), progress=False)
    full, resumed = wb.load_model(tmp_path / "full.pt"), wb.load_model(tmp_path / "cut.pt")
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_order_free_augmentation_reorders_only_static_clips(tiny_probe: Path) -> None:
    """--order-free-p 1: a static-class clip comes in a permuted frame order (same frames), a temporal
    clip exactly as without it."""
    import numpy as np

    from workbench.datasets import open_dataset
    from workbench.models.spec import ModelSpec

    dataset = open_dataset(tiny_probe)
    clips = train_module.MemoryClips(dataset, list(range(len(dataset))))
    names = list(dataset.classes)
    assert {names[i] for i in clips.order_free} == {n for n in names if n.startswith("static_")}
    spec = ModelSpec(scheme="tsn", backbone="resnet-tiny", num_classes=len(names), frames=8, input_size=32,
                     resize=32, class_names=names)
    static = next(i for i, label in enumerate(clips.labels.tolist()) if label in clips.order_free)
    moving = next(i for i, label in enumerate(clips.labels.tolist()) if label not in clips.order_free)
    reordered = 0
    for seed in range(5):
        plain, _ = clips.batch([static], spec, True, np.random.default_rng(seed), 0)
        shuffled, _ = clips.batch([static], spec, True, np.random.default_rng(seed), 0, order_free_p=1.0)
        flat_plain, flat_shuffled = plain[0].flatten(1), shuffled[0].flatten(1)
        match = (flat_shuffled[:, None] == flat_plain[None]).all(-1)  # frame t of one == frame s of other
        assert match.any(1).all() and match.any(0).all()  # the same frames
        reordered += not torch.equal(plain, shuffled)
        same_a, _ = clips.batch([moving], spec, True, np.random.default_rng(seed), 0)
        same_b, _ = clips.batch([moving], spec, True, np.random.default_rng(seed), 0, order_free_p=1.0)
        assert torch.equal(same_a, same_b)
    assert reordered >= 4
