"""Attribution: every method on every scheme, known answers, metrics on real probe clips, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from analysis.attribution import (
    METHODS,
    attribute,
    class_probabilities,
    deletion_insertion,
    localisation,
    randomization_check,
    randomized_copy,
    rank_correlation,
    score_dataset,
    summarize_scores,
    temporal_profile,
    temporal_spread,
)
from analysis.statistics import bootstrap_interval
from tests.conftest import randomize
from workbench.demo import demo_checkpoints, demo_probe_dir
from workbench.display import display_frames
from workbench.masks import clip_mask
from workbench.models.spec import ModelSpec
from workbench.probe import load_mask
from workbench.video import load_clip, sample_indices

FRAMES, SIZE = 4, 32


def tiny(scheme: str, seed: int = 0) -> torch.nn.Module:
    """A tiny model with non-trivial seeded weights (gates included), in eval mode."""
    torch.manual_seed(seed)
    model = wb.build_model(scheme, backbone="resnet-tiny", num_classes=5, frames=FRAMES)
    return randomize(model, seed)


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    """The shipped demo TSN (trained on probe clips): the model every demo checkpoint build starts with."""
    checkpoints = demo_checkpoints()
    if "tsn" not in checkpoints:
        pytest.fail("the demo TSN checkpoint is missing from workbench/assets")
    return wb.load_model(checkpoints["tsn"])


def probe_clip(model: torch.nn.Module, relative: str) -> tuple[torch.Tensor, np.ndarray, int]:
    """A shipped probe video as the model's clip, its mask in clip geometry and its class index."""
    root = demo_probe_dir()
    clip = load_clip(root / relative, model.spec)
    mask = clip_mask(load_mask(root, relative), model.spec)
    label = model.spec.class_names.index(relative.split("/")[0])
    return clip, mask, label


@pytest.mark.parametrize("scheme", wb.available_schemes())
def test_every_method_gives_finite_maps_in_one_layout(scheme: str) -> None:
    model = tiny(scheme)
    clip = torch.randn(1, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    # occlusion at default settings is ~600 perturbed clips here; a coarse window keeps the test quick
    coarse = {"occlusion": {"window": 8, "stride": 8}}
    # the predicted class: Grad-CAM is ReLU'd, and a random model may have no positive evidence for
    # an arbitrary class (an all-zero Grad-CAM map is then the right answer)
    predicted = int(model(clip).argmax())
    for method in METHODS:
        result = attribute(model, clip, method, **coarse.get(method, {}))
        assert result.map.shape == (FRAMES, SIZE, SIZE), (scheme, method)
        assert result.signed_map.shape == (FRAMES, SIZE, SIZE), (scheme, method)
        assert np.isfinite(result.map).all() and (result.map >= 0).all(), (scheme, method)
        assert result.map.sum() > 0, (scheme, method)  # an all-zero map would pass every other check
        if result.raw is not None:
            assert result.raw.shape == (FRAMES, 3, SIZE, SIZE)
        assert result.target == predicted


@pytest.mark.parametrize("scheme", ["tsn", "gsm", "c3d"])
def test_integrated_gradients_completeness(scheme: str) -> None:
    # Known answer: IG attributions sum to f(x) - f(baseline); the logits here come from our own forward.
    model = tiny(scheme, seed=3)
    clip = torch.randn(1, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    result = attribute(model, clip, "integrated_gradients", target=1, steps=32)
    with torch.no_grad():
        difference = float(model(clip)[0, 1] - model(torch.zeros_like(clip))[0, 1])
    assert abs(difference) > 1e-2  # otherwise the check below is vacuous
    total = float(result.raw.astype(np.float64).sum())
    assert result.delta is not None
    assert abs(total - difference) <= result.delta + 1e-4
    assert result.delta < 0.02 * abs(difference)  # 32 Gauss-Legendre steps converge on these models


def test_temporal_ablation_is_flat_on_a_frozen_clip_for_tsn() -> None:
    # TSN scores every frame alone and averages: identical frames must get identical credit.
    model = tiny("tsn", seed=5)
    frame = torch.randn(1, 1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    frozen = frame.expand(1, FRAMES, 3, SIZE, SIZE).contiguous()
    result = attribute(model, frozen, "temporal_ablation", target=0)
    per_frame = result.signed_map[:, 0, 0]
    assert np.ptp(per_frame) < 1e-5 * max(1.0, np.abs(per_frame).max())
    assert np.abs(per_frame).max() > 1e-4  # the frames do matter, equally
    assert temporal_spread(temporal_profile(result.signed_map)) > 0.9999


def test_temporal_ablation_puts_all_credit_on_the_only_informative_frame() -> None:
    # Known answer: frames equal to the baseline change nothing when ablated; only frame 2 carries signal.
    # FeatureAblation runs the ablated clips in one batch and the original alone: on some CPUs the two
    # batch shapes take different kernels (measured on an Intel Xeon: 1.1e-5 of the logits), so "nothing"
    # is judged against the logits' scale, never as an exact zero.
    model = tiny("tsn", seed=6)
    clip = torch.zeros(1, FRAMES, 3, SIZE, SIZE)
    clip[0, 2] = torch.randn(3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    logits = model(clip)
    logit = int(torch.argmax(logits))
    tolerance = 1e-4 * float(logits.abs().max())  # ~10x the kernel differences seen across CPUs
    result = attribute(model, clip, "temporal_ablation", target=logit)
    credit = result.signed_map[:, 0, 0]
    assert abs(credit[2]) > 100 * tolerance  # frame 2 matters...
    assert np.abs(np.delete(credit, 2)).max() <= tolerance  # ...and no other frame does
    profile = temporal_profile(result.signed_map)
    assert profile[2] == pytest.approx(1.0, abs=1e-3)
    assert temporal_spread(profile) < 0.01
    # frame blocks: frames (2, 3) form one feature, so both carry the same (whole) credit
    blocks = attribute(model, clip, "temporal_ablation", target=logit, block=2)
    assert blocks.signed_map[2, 0, 0] == pytest.approx(blocks.signed_map[3, 0, 0])
    assert abs(blocks.signed_map[0, 0, 0]) <= tolerance


def test_temporal_spread_known_values() -> None:
    assert temporal_spread(np.full(8, 1 / 8)) == pytest.approx(1.0)
    assert temporal_spread(np.eye(8)[3]) == pytest.approx(0.0)
    assert temporal_spread(np.array([0.5, 0.5, 0, 0])) == pytest.approx(0.5)  # log 2 / log 4


def test_randomisation_sanity_check_changes_the_maps(trained: torch.nn.Module) -> None:
    clip, _, label = probe_clip(trained, "move_left/move_left_00000.mp4")
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    for method in ("saliency", "integrated_gradients", "gradcam"):
        steps = randomization_check(trained, clip, method, target=label, depth=2)
        assert [s.layers for s in steps] == [("fc",), ("fc", "layer4")]
        # randomising fc and layer4 of a trained model must move the map away from the original
        assert steps[-1].rank_correlation < 0.8, (method, steps)
    # the check works on copies: the trained model is untouched
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())
    # and an empty randomisation is the identity (the comparison itself is not what changes)
    same = attribute(randomized_copy(trained, []), clip, "saliency", target=label).map
    original = attribute(trained, clip, "saliency", target=label).map
    assert rank_correlation(same, original) == pytest.approx(1.0)


def test_clip_mask_follows_sampling_and_crop() -> None:
    # 16-frame 32x64 mask: frame i marks row i; the right half is always on.
    video = np.zeros((16, 32, 64), dtype=bool)
    for i in range(16):
        video[i, i, :] = True
    video[:, :, 32:] = True
    spec = ModelSpec(scheme="tsn", backbone="resnet-tiny", num_classes=2, frames=8, input_size=16)
    mask = clip_mask(video, spec)
    assert mask.shape == (8, 16, 16)
    # short side 32 -> 16 makes it 16x32; the centre crop keeps columns 8..23: right half = crop cols 8..15
    assert mask[:, :, 8:].all()
    indices = sample_indices(16, 8, train=False)
    assert list(indices) == [1, 3, 5, 7, 9, 11, 13, 15]
    # the left crop columns: only the (halved) row of the sampled frame survives the 0.5 threshold
    left = mask[:, :, :8]
    assert left.sum() < 8 * 16 * 8 * 0.2
    # identity geometry (the demo models: 48 px video, 48 px input)
    same = ModelSpec(scheme="tsn", backbone="resnet-tiny", num_classes=2, frames=8, input_size=64, resize=64)
    square = np.zeros((16, 64, 64), dtype=bool)
    square[:, 10:20, 30:40] = True
    np.testing.assert_array_equal(clip_mask(square, same), square[indices])


def test_localisation_known_answers() -> None:
    mask = np.zeros((2, 4, 4), dtype=bool)
    mask[0, 1:3, 1:3] = True
    exact = localisation(mask.astype(float), mask)
    assert (exact.energy_in_mask, exact.area_share, exact.pointing_hit) == (1.0, 4 / 32, True)
    flat = localisation(np.ones((2, 4, 4)), mask)
    assert flat.energy_in_mask == pytest.approx(flat.area_share)
    assert not flat.pointing_hit  # a tie over the whole clip does not point at the object
    assert flat.gain == pytest.approx(1.0)


def test_rank_correlation_known_answers() -> None:
    a = np.array([3.0, 1.0, 2.0, 5.0])
    assert rank_correlation(a, a) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a, np.exp(a)) == pytest.approx(1.0)  # ranks, not values
    assert rank_correlation([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(22.5))


def test_deletion_insertion_endpoints_and_frame_order(trained: torch.nn.Module) -> None:
    clip, _, label = probe_clip(trained, "grow/grow_00000.mp4")
    frames = clip.shape[1]
    base = torch.zeros_like(clip)
    p_clip, p_base = class_probabilities(trained, torch.cat([clip, base]), label)
    # a map with all mass on frame 5: the first deletion step removes exactly that frame
    focus = np.zeros((frames, 48, 48))
    focus[5] = 1.0
    curve = deletion_insertion(trained, clip, focus, label, steps=frames, unit="frame")
    assert curve.deletion[0] == pytest.approx(p_clip, abs=1e-6)
    assert curve.deletion[-1] == pytest.approx(p_base, abs=1e-6)
    assert curve.insertion[0] == pytest.approx(p_base, abs=1e-6)
    assert curve.insertion[-1] == pytest.approx(p_clip, abs=1e-6)
    without_5 = clip.clone()
    without_5[0, 5] = 0.0
    assert curve.deletion[1] == pytest.approx(class_probabilities(trained, without_5, label)[0], abs=1e-6)
    pixel = deletion_insertion(trained, clip, focus, label, steps=8, unit="pixel")
    assert pixel.fractions[0] == 0.0 and pixel.fractions[-1] == 1.0 and len(pixel.deletion) == 9


def test_trained_model_attributions_land_on_the_object(trained: torch.nn.Module) -> None:
    # Real checkpoint, real decoded probe videos: gradient maps put far more energy on the object
    # than its area share (a uniform map's score), and their maximum points at it.
    gains, hits = [], []
    for relative in ("move_left/move_left_00000.mp4", "rotate_cw/rotate_cw_00000.mp4", "grow/grow_00001.mp4"):
        clip, mask, label = probe_clip(trained, relative)
        result = attribute(trained, clip, "integrated_gradients", target=label)
        loc = localisation(result.map, mask)
        gains.append(loc.gain)
        hits.append(loc.pointing_hit)
    assert min(gains) > 2.0, gains
    assert sum(hits) >= 2, hits


def test_bootstrap_interval_brackets_the_mean() -> None:
    values = np.random.default_rng(0).normal(1.0, 0.5, size=200)
    low, high = bootstrap_interval(values, 500, seed=1)
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * 0.5 / np.sqrt(200), rel=0.25)
    assert bootstrap_interval(values, 500, seed=1) == (low, high)
    assert np.isnan(bootstrap_interval([float("nan")])[0])


def test_display_frames_round_trip(trained: torch.nn.Module) -> None:
    root = demo_probe_dir()
    clip = load_clip(root / "fade_in/fade_in_00000.mp4", trained.spec)
    pixels = display_frames(clip, trained.spec)
    from workbench.video import preprocess

    again = preprocess(torch.from_numpy(pixels), trained.spec)
    assert torch.allclose(again, clip[0], atol=0.02)


def test_score_dataset_on_real_probe_clips(trained: torch.nn.Module) -> None:
    results = score_dataset({"tsn": trained}, demo_probe_dir(), ["saliency", "gradcam"], max_clips=3,
                            progress=False, curve_steps=4)
    assert len(results) == 6 and set(results["method"]) == {"saliency", "gradcam"}
    assert results["clip"].nunique() == 3 and results["label"].nunique() == 3  # spread over classes
    assert results["energy_in_mask"].between(0, 1).all() and (results["area_share"] > 0).all()
    summary = summarize_scores(results, reps=200)
    assert list(summary["clips"]) == [3, 3]
    assert (summary["energy_in_mask_low"] <= summary["energy_in_mask"]).all()
    assert (summary["energy_in_mask"] <= summary["energy_in_mask_high"]).all()


@pytest.fixture
def cli(monkeypatch):
    """workbench.cli.main, with the attribution command registered."""
    import workbench.cli as cli_module

    assert "workbench.cli.attribute" in cli_module.COMMAND_MODULES
    return cli_module.main


def test_cli_attributes_a_video(cli, trained, tmp_path: Path, capsys) -> None:
    video = demo_probe_dir() / "move_up/move_up_00000.mp4"
    checkpoint = demo_checkpoints()["tsn"]
    code = cli(["attribute", "--model", str(checkpoint), "--model", str(checkpoint), str(video),
                "--methods", "saliency", "temporal_ablation", "--sanity", "--out", str(tmp_path / "run")])
    assert code == 0
    run = tmp_path / "run"
    with np.load(run / "maps" / "tsn.npz") as maps:
        assert maps["saliency"].shape == (8, 48, 48) and maps["saliency_raw"].shape == (8, 3, 48, 48)
        assert "temporal_ablation_raw" not in maps
    assert (run / "maps" / "tsn-2.npz").is_file()  # same file twice: unique names
    summary = pd.read_csv(run / "summary.csv")
    assert len(summary) == 4 and summary["energy_in_mask"].notna().all()  # mask found next to the video
    results = pd.read_parquet(run / "results.parquet")
    assert np.isclose(sum(json.loads(results["profile"][0])), 1.0, atol=1e-3)
    meta = json.loads((run / "run.json").read_text())
    assert meta["kind"] == "attribute" and meta["models"][0]["sha256"] == wb.file_sha256(checkpoint)
    assert {"torch", "captum", "decord", "workbench"} <= set(meta["versions"])
    assert (run / "figures" / "saliency_grid.html").is_file()
    assert summary["sanity_rank_corr"].notna().any()
    agreement = pd.read_csv(run / "agreement.csv")
    assert len(agreement) == 4  # one method pair per model + one model pair per method
    # the same checkpoint twice must agree with itself exactly
    between_models = agreement[agreement["between"] == "models"]
    assert np.allclose(between_models["rank_correlation"], 1.0)


def test_cli_scores_a_dataset_and_reports_user_errors(cli, trained, tmp_path: Path, capsys) -> None:
    checkpoint = str(demo_checkpoints()["tsn"])
    code = cli(["attribute", "--model", checkpoint, "--data", str(demo_probe_dir()), "--max-clips", "2",
                "--methods", "gradcam", "--bootstrap", "100", "--out", str(tmp_path / "data")])
    assert code == 0
    summary = pd.read_csv(tmp_path / "data" / "summary.csv")
    assert summary.loc[0, "clips"] == 2 and "energy_in_mask_high" in summary
    assert json.loads((tmp_path / "data" / "run.json").read_text())["dataset"]["fingerprint"]
    capsys.readouterr()
    assert cli(["attribute", "--model", checkpoint, "nope.mp4", "--out", str(tmp_path / "x")]) == 2
    assert "no such video" in capsys.readouterr().err
    video = str(demo_probe_dir() / "move_up/move_up_00000.mp4")
    assert cli(["attribute", "--model", checkpoint, video, "--methods", "lime", "--out", str(tmp_path)]) == 2
    assert "unknown method 'lime'" in capsys.readouterr().err


def test_shipped_localisation_table_beats_area_share_and_is_reproducible(tmp_path: Path) -> None:
    """The demo zoo's localisation table (every scheme x method) is complete, at least one method beats
    the mask's area share (95% lower bound) for every scheme, and one row recomputes to the same value."""
    from workbench.cli import main
    from workbench.demo import demo_localisation

    shipped = demo_localisation()
    assert shipped is not None, "workbench/assets/attribution_localisation is missing"
    table, run = shipped
    assert set(table["model"]) == set(demo_checkpoints()) and len(table) == 8 * len(METHODS)
    for model, rows in table.groupby("model"):
        assert (rows["energy_in_mask_low"] > rows["area_share"]).any(), model
        gradients = rows.set_index("method").loc["integrated_gradients"]
        assert gradients["energy_in_mask"] > 5 * gradients["area_share"], model
    out = tmp_path / "gsm"
    clips = str(int(table["clips"].max()))
    assert main(["attribute", "--model", str(demo_checkpoints()["gsm"]), "--data", str(demo_probe_dir()),
                 "--max-clips", clips, "--methods", "saliency", "--out", str(out)]) == 0
    again = pd.read_csv(out / "summary.csv").set_index("method").loc["saliency"]
    before = table[(table["model"] == "gsm") & (table["method"] == "saliency")].iloc[0]
    for column in ("energy_in_mask", "area_share", "pointing_hit"):
        assert again[column] == pytest.approx(before[column], rel=1e-5, abs=1e-7), column


def test_dataset_scores_do_not_depend_on_where_the_dataset_lies(tiny_probe: Path, tmp_path: Path) -> None:
    """Clips are named, and SmoothGrad's noise seeded, by their path inside the dataset."""
    import shutil

    model = tiny("gsm", seed=2)
    model.spec.class_names = [f"c{i}" for i in range(5)]
    first, second = tmp_path / "a" / "probe", tmp_path / "b" / "deeper" / "probe"
    for copy in (first, second):
        shutil.copytree(tiny_probe, copy)
    rows = [score_dataset({"gsm": model}, copy, ["smoothgrad"], target=1, max_clips=2, progress=False,
                          curve_steps=2) for copy in (first, second)]
    assert rows[0]["clip"].tolist() == rows[1]["clip"].tolist()
    assert not rows[0]["clip"].str.startswith(str(tmp_path)).any()
    pd.testing.assert_frame_equal(rows[0].drop(columns=["seconds"]), rows[1].drop(columns=["seconds"]))
