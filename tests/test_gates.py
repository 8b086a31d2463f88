"""analysis.gates (capture, routing, alignment, interventions) and the `gates` CLI, on decoded probe clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from analysis import gates
from analysis.gates import GateRun, LayerGates
from tests.conftest import randomize
from workbench import build_model, load_clip, load_model, probe, save_model
from workbench.demo import demo_checkpoints, demo_probe_dir
from workbench.display import display_frames
from workbench.masks import clip_coverage, probe_mask
from workbench.models.temporal import shift_time
from workbench.video import sample_indices

FRAMES, SIZE = 8, 32
PROBE_SPEC = {"class_names": probe.class_names(), "mirror_of": probe.mirror_table(),
              "class_kinds": probe.class_kinds(), "input_size": SIZE}


def _model(scheme: str, seed: int = 0) -> torch.nn.Module:
    model = build_model(scheme, backbone="resnet-tiny", num_classes=len(probe.class_names()), frames=FRAMES,
                        **PROBE_SPEC)
    return randomize(model, seed)


def _no_gate_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if ".gsm." not in k}


@pytest.fixture(scope="module")
def probe_clip(tiny_probe: Path) -> tuple[Path, torch.Tensor]:
    """A real decoded moving-object probe clip at the model's input size."""
    video = tiny_probe / "move_right" / "move_right_00000.mp4"
    return video, load_clip(video, _model("gsm").spec)


@pytest.mark.parametrize("scheme", ["gsm", "gsf"])
def test_captured_gates_have_shape_and_range(scheme: str, probe_clip) -> None:
    model = _model(scheme)
    run = gates.capture_gates(model, probe_clip[1])
    assert [layer.name for layer in run.layers] == [n for n, _ in model.temporal_ops()]
    for layer in run.layers:
        b, g, t, h, w = layer.gates.shape
        assert (b, g, t) == (1, 2, FRAMES)
        assert layer.before.shape[0:2] == (1, FRAMES) and layer.before.shape[-2:] == (h, w)
        assert layer.gates.min() >= -1 and layer.gates.max() <= 1
        assert layer.gates.abs().max() > 0.1  # randomised gate convs: gates really vary
    assert torch.allclose(run.logits, model(probe_clip[1]), atol=1e-6)
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def _gsm(which: str) -> torch.nn.Module:
    """A randomised GSM, or the shipped trained demo GSM (skipped until it is trained)."""
    if which == "random":
        return _model("gsm", seed=4)
    path = demo_checkpoints().get("gsm")
    if path is None:
        pytest.fail("the demo GSM is missing from workbench/assets")
    return load_model(path)


@pytest.mark.parametrize("which", ["random", "demo"])
def test_gsm_output_is_rebuilt_from_captured_gates_with_the_documented_directions(which: str) -> None:
    """(1-b-f) x_t + b_t+1 x_t+1 + f_t-1 x_t-1 with b = even-group gates, f = odd-group gates."""
    model = _gsm(which)
    video = demo_probe_dir() / "move_left" / "move_left_00000.mp4"
    run = gates.capture_gates(model, load_clip(video, model.spec))
    for layer in run.layers:
        back, fwd = gates.gate_weights(layer)
        x = layer.before
        rebuilt = (1 - back - fwd) * x + shift_time(back * x, -1) + shift_time(fwd * x, 1)
        assert torch.allclose(rebuilt, layer.after, atol=1e-5), layer.name


def test_zero_gate_weights_give_zero_gates_and_all_kept(probe_clip) -> None:
    model = _model("gsm", seed=2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".conv3D." in name:
                param.zero_()
    run = gates.capture_gates(model, probe_clip[1])
    for layer in run.layers:
        assert torch.count_nonzero(layer.gates) == 0
        assert torch.equal(layer.after, layer.before)
    routing = gates.gate_routing(run)
    assert (routing["kept_share"] == 1.0).all() and (routing["moved_share"] == 0.0).all()
    stats = gates.gate_statistics(run)
    assert (stats["abs_mean"] == 0).all() and (stats["positive_share"] == 0).all()


def _synthetic(x: torch.Tensor, gates_: torch.Tensor) -> GateRun:
    return GateRun([LayerGates("op", "gsm", gates_, x, x)], torch.zeros(1, 2))


def test_routing_fractions_on_a_known_gate() -> None:
    # 3 frames, 2 channels (one per group), 1x1 positions; x_t = t+1, backward gate 0.5, forward gate 0
    x = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1, 1).expand(1, 3, 2, 1, 1).contiguous()
    g = torch.zeros(1, 2, 3, 1, 1)
    g[:, 0] = 0.5
    table = gates.gate_routing(_synthetic(x, g)).set_index("time")
    # frame t keeps (0.5 x_t)^2 of channel 0 and x_t^2 of channel 1, receives (0.5 x_t+1)^2
    kept = np.array([0.25 * 1 + 1, 0.25 * 4 + 4, 0.25 * 9 + 9])
    from_next = np.array([0.25 * 4, 0.25 * 9, 0.0])
    np.testing.assert_allclose(table["kept_energy"], kept)
    np.testing.assert_allclose(table["from_next_energy"], from_next)
    np.testing.assert_allclose(table["from_prev_energy"], 0.0)
    np.testing.assert_allclose(table["from_next_share"], from_next / (kept + from_next))
    # the forward group with gate -1: (1-(-1)) x kept, (-x)^2 sent forward
    g2 = torch.zeros(1, 2, 3, 1, 1)
    g2[:, 1] = -1.0
    table2 = gates.gate_routing(_synthetic(x, g2)).set_index("time")
    np.testing.assert_allclose(table2["kept_energy"], [1 + 4, 4 + 16, 9 + 36])
    np.testing.assert_allclose(table2["from_prev_energy"], [0, 1, 4])
    grid = gates.channel_time(x, *gates.gate_weights(_synthetic(x, g).layers[0]))
    np.testing.assert_allclose(grid, [[-0.25] * 3, [0.0] * 3])  # channel 0: a quarter sent back


def test_tsm_routing_is_the_fixed_fold_pattern() -> None:
    # uniform features: energy shares equal channel shares fold/C
    x = torch.ones(1, 4, 16, 2, 2)
    run = _synthetic(x, torch.zeros(1, 2, 4, 2, 2))
    table = gates.tsm_routing(run).set_index("time")
    np.testing.assert_allclose(table.loc[1, ["kept_share", "from_prev_share", "from_next_share"]],
                               [12 / 16, 2 / 16, 2 / 16])
    np.testing.assert_allclose(table.loc[0, ["kept_share", "from_prev_share", "from_next_share"]],
                               [12 / 14, 0, 2 / 14])


def test_real_tsm_routing_matches_its_output(probe_clip) -> None:
    """On a real TSM model, the moved energy is exactly the energy in the shifted fold of its output."""
    from analysis.hooks import capture

    model = _model("tsm", seed=5)
    clip = probe_clip[1]
    table = gates.model_routing(model, clip)
    name, op = model.temporal_ops()[0]
    with torch.no_grad(), capture(model, [name]) as seen:
        model(clip)
    out = seen.outputs[name].view(1, FRAMES, *seen.outputs[name].shape[1:])
    fold_energy = (out[:, :, : 2 * op.fold] ** 2).sum(dim=(0, 2, 3, 4)).double().numpy()
    first = table[table["layer"] == name]
    np.testing.assert_allclose(first["from_prev_energy"] + first["from_next_energy"], fold_energy, rtol=1e-5)


@pytest.mark.parametrize("which", ["random", "demo"])
def test_zero_gates_on_all_layers_reproduce_the_no_shift_network(which: str) -> None:
    gsm = _gsm(which)
    clip = load_clip(demo_probe_dir() / "rotate_cw" / "rotate_cw_00001.mp4", gsm.spec)
    tsn = build_model("tsn", backbone="resnet-tiny", num_classes=gsm.spec.num_classes, frames=FRAMES)
    tsn.load_state_dict(_no_gate_weights(gsm), strict=True)
    layers = [n for n, _ in gates.gated_ops(gsm)]
    with torch.no_grad():
        expected = tsn.eval()(clip)
        assert not torch.allclose(gsm(clip), expected, atol=1e-3)  # the gates do matter here
        assert torch.allclose(gates.run_intervened(gsm, clip, layers, "zero"), expected, atol=1e-5)
        # "tsm" swaps each gated op for TSM's shift at the same place: the TSM network, same weights
        tsm = build_model("tsm", backbone="resnet-tiny", num_classes=gsm.spec.num_classes,
                          frames=FRAMES)
        tsm.load_state_dict(_no_gate_weights(gsm), strict=True)
        assert torch.allclose(gates.run_intervened(gsm, clip, layers, "tsm"), tsm.eval()(clip), atol=1e-5)
        assert torch.allclose(gsm(clip), gates.capture_gates(gsm, clip).logits)  # hooks gone


def test_plus_gates_move_whole_groups(probe_clip) -> None:
    from analysis.hooks import capture, replace_outputs

    gsm = _model("gsm", seed=8)
    name = gates.gated_ops(gsm)[0][0]
    with torch.no_grad(), replace_outputs(gsm, gates.intervention_hooks(gsm, [name], "plus")):
        with capture(gsm, [name], inputs=True) as seen:
            gsm(probe_clip[1])
    x = seen.inputs[name].view(1, FRAMES, *seen.inputs[name].shape[1:])
    y = seen.outputs[name].view_as(x)
    half = x.shape[2] // 2
    assert torch.equal(y[:, :-1, :half], x[:, 1:, :half])  # group 0: frame t is frame t+1
    assert torch.equal(y[:, 1:, half:], x[:, :-1, half:])  # group 1: frame t is frame t-1
    assert torch.count_nonzero(y[:, -1, :half]) == 0


def test_intervention_table_and_accuracy(probe_clip, tiny_probe) -> None:
    gsm = _model("gsm", seed=9)
    table = gates.intervention_table(gsm, probe_clip[1])
    assert len(table) == 1 + (1 + 4) * 4
    zero_all = table[(table["target"] == "all layers") & (table["mode"] == "zero")].iloc[0]
    base = table.iloc[0]
    assert zero_all["probability_change"] == pytest.approx(
        zero_all["original_class_probability"] - base["probability"])
    assert table["total_variation"].max() > 0
    accuracy = gates.intervention_accuracy(gsm, tiny_probe, modes=("zero",), per_layer=False, max_clips=9,
                                           batch_size=4)
    assert list(accuracy["target"]) == ["none", "all layers"] and (accuracy["clips"] == 9).all()
    # known answers: the unmodified row is the model's accuracy, zero gates are the TSN network's
    from workbench.datasets import open_dataset

    dataset = open_dataset(tiny_probe).with_spec(gsm.spec)
    batch = torch.stack([dataset[i][0] for i in range(9)])
    truth = torch.tensor([dataset[i][1] for i in range(9)])
    tsn = build_model("tsn", backbone="resnet-tiny", num_classes=gsm.spec.num_classes, frames=FRAMES)
    tsn.load_state_dict(_no_gate_weights(gsm), strict=True)
    with torch.no_grad():
        expected = [(m.eval()(batch).argmax(-1) == truth).float().mean().item() for m in (gsm, tsn)]
    assert list(accuracy["accuracy"]) == pytest.approx(expected)


def test_alignment_known_answers() -> None:
    mask = torch.zeros(1, 4, 8, 8)
    mask[:, :, 2:6, 0:4] = 1.0  # a quarter of each frame
    inside = mask[:, None].expand(1, 2, 4, 8, 8)[..., ::2, ::2]  # gates 1 exactly on the object, 4x4
    clip = torch.zeros(1, 4, 3, 8, 8)
    clip[:, 1:, :, 2:6, 0:4] = 1.0  # the object appears at frame 1: motion at frames 0-1 only
    focused = gates.motion_alignment(_synthetic(torch.ones(1, 4, 2, 4, 4), inside), clip, mask).iloc[0]
    assert focused["gate_in_mask_share"] == pytest.approx(1.0)
    assert focused["mask_area"] == pytest.approx(0.25)
    assert focused["concentration"] == pytest.approx(4.0)
    assert focused["mask_correlation"] == pytest.approx(1.0)
    uniform = gates.motion_alignment(_synthetic(torch.ones(1, 4, 2, 4, 4), torch.full((1, 2, 4, 4, 4), 0.3)),
                                     clip, mask).iloc[0]
    assert uniform["gate_in_mask_share"] == pytest.approx(0.25)  # uniform gates: share == area
    motion = gates.frame_difference(clip)
    assert motion[0, 2:].abs().sum() == 0 and motion[0, 0].max() == pytest.approx(1.0)


def test_clip_mask_and_frames_follow_the_clip_geometry(tiny_probe: Path) -> None:
    video = tiny_probe / "grow" / "grow_00001.mp4"
    spec = _model("gsm").spec
    mask = probe.load_mask(tiny_probe, video)
    picked = sample_indices(mask.shape[0], spec.frames)
    cover = clip_coverage(mask, spec)
    assert cover.shape == (FRAMES, SIZE, SIZE)
    np.testing.assert_allclose(cover.numpy(), mask[picked].astype(np.float32), atol=1e-6)  # same size
    frames = display_frames(load_clip(video, spec), spec)
    assert frames.shape == (FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert probe_mask(video) is not None and probe_mask(Path("/nonexistent/a/b.mp4")) is None


def test_non_gated_model_is_refused(probe_clip) -> None:
    with pytest.raises(ValueError, match="model has no gates"):
        gates.capture_gates(_model("tsm"), probe_clip[1])


@pytest.mark.slow
def test_cli_exports_tables_figures_and_run_json(
    tmp_path: Path, tiny_probe: Path, monkeypatch, capsys
) -> None:
    from workbench import cli

    assert "workbench.cli.gates" in cli.COMMAND_MODULES
    ckpt = save_model(_model("gsm", seed=1), tmp_path / "gsm.pt")
    video = tiny_probe / "move_up" / "move_up_00002.mp4"
    out = tmp_path / "run"
    assert cli.main(["gates", str(ckpt), str(video), "--out", str(out), "--data", str(tiny_probe),
                     "--max-clips", "4"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["kind"] == "gates" and run["format"] == "gate-shift-workbench-run" and run["version"] == 1
    assert run["models"][0]["sha256"] and run["options"]["mask"] == "probe mask next to the clip"
    assert run["dataset"]["fingerprint"] and run["versions"]["torch"] and run["status"] == "complete"
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 4 * 2 * FRAMES  # layers x groups x frames
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and summary["gate_in_mask_share"].between(0, 1).all()
    for name in run["outputs"]["figures"]:
        html = (out / "figures" / f"{name}.html").read_text()
        assert 'src="plotly.min.js"' in html and len(html) < 1_500_000  # plotly.js shared, not inlined
    assert set(run["outputs"]["figures"]) >= {"gate_overlay", "routing_heatmap", "channel_time", "alignment",
                                              "interventions", "intervention_accuracy"}
    # the raw gates of every layer, as the capture gives them
    with np.load(out / "gates.npz") as saved:
        layers = [name for name, _ in gates.gated_ops(load_model(ckpt))]
        assert sorted(saved.files) == sorted(layers)
        assert all(saved[name].shape[:3] == (1, 2, FRAMES) for name in layers)
        assert all(np.abs(saved[name]).max() <= 1 for name in layers)
    tsm_ckpt = save_model(_model("tsm"), tmp_path / "tsm.pt")
    assert cli.main(["gates", str(tsm_ckpt), str(video), "--out", str(tmp_path / "no")]) == 2
    assert "tsm model has no gates" in capsys.readouterr().err
