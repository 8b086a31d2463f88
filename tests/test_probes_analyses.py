"""Known answers of the probing analyses: temporal receptive field, arrow of time, static/dynamic bias.

Each answer is structural (TSN cannot see another frame; nothing reaches beyond the analytic bound; an
order-blind layer cannot tell a clip from its reverse) and holds exactly, on tiny models and on the
shipped demo zoo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import workbench as wb
from analysis.arrow_of_time import arrow_of_time
from analysis.layer_features import pool_time
from analysis.linear_probe import fit_logistic, grouped_folds
from analysis.receptive_field import input_clips, reach_summary, receptive_field
from analysis.static_dynamic import scores, static_dynamic
from workbench import probe
from workbench.models import SCHEMES, get_scheme
from workbench.models.reach import block_reach, layer_bounds
from workbench.models.resnet import make_backbone

SCHEME_NAMES = list(SCHEMES)
# mc3 mixes time only in its first `mc_stages` stages (an option), so its bound is not one per block
UNIFORM = [name for name in SCHEME_NAMES if name != "mc3"]


def tiny(scheme: str, seed: int = 0, classes: int = 14) -> torch.nn.Module:
    """A resnet-tiny model with random weights, gates included (a fresh GSM's gate conv is zero)."""
    torch.manual_seed(seed)
    model = wb.build_model(scheme, backbone="resnet-tiny", num_classes=classes, frames=8, input_size=32,
                           resize=32, class_names=probe.class_names() if classes == 14 else None)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "conv3D" in name:
                parameter.normal_(0, 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def demo() -> dict[str, torch.nn.Module]:
    return {scheme: wb.load_model(path) for scheme, path in wb.demo_checkpoints().items()}


@pytest.mark.parametrize("backbone", ["resnet-tiny", "resnet50"])
def test_bounds_are_the_scheme_table_summed_over_blocks(backbone: str) -> None:
    depth = make_backbone(backbone)
    for scheme in UNIFORM:
        for stages in ((1, 2, 3, 4), (2, 4)):
            model = wb.build_model(scheme, backbone=backbone, num_classes=3, frames=8, temporal_stages=stages)
            bounds = layer_bounds(model)
            expected, total = {"stem": 0}, 0
            for stage, blocks in enumerate(depth.layers, start=1):
                total += blocks * block_reach(get_scheme(scheme), depth.block) if stage in stages else 0
                expected[f"layer{stage}"] = total
            expected["logits"] = total
            assert bounds == expected, (scheme, backbone, stages)
    gsf = wb.build_model("gsf", backbone="resnet-tiny", num_classes=3, frames=8)
    assert layer_bounds(gsf)["layer4"] == 12
    mc3 = layer_bounds(wb.build_model("mc3", backbone=backbone, num_classes=3, frames=8))
    first = depth.layers[0] * block_reach(get_scheme("mc3"), depth.block)  # 3x3x3 in stage 1 only
    assert mc3 == {"stem": 0, **{f"layer{i}": first for i in range(1, 5)}, "logits": first}


@pytest.mark.parametrize("scheme", SCHEME_NAMES)
def test_influence_is_exactly_zero_beyond_the_bound_and_reaches_it(scheme: str) -> None:
    model = tiny(scheme)
    bound = layer_bounds(model)["layer4"]
    frames = 2 * bound + 1 if bound else 3  # long enough that every layer's bound fits in the clip
    clip = torch.randn(1, frames, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    table = receptive_field({scheme: model}, {scheme: [clip]}, probes=1)
    assert list(table.columns) == ["model", "layer", "offset", "influence", "bound"]
    for layer, group in table.groupby("layer"):
        assert sorted(group["offset"]) == list(range(-(frames - 1), frames))
        beyond = group[group["offset"].abs() > group["bound"]]
        assert (beyond["influence"] == 0.0).all(), (scheme, layer)
        assert group["influence"].sum() == pytest.approx(1.0)
    summary = reach_summary(table)
    assert summary["bound_reached"].all(), summary.to_string()
    if scheme == "tsn":
        assert (table.loc[table["offset"] != 0, "influence"] == 0.0).all()
        assert (table.loc[table["offset"] == 0, "influence"] == 1.0).all()


@pytest.mark.slow
def test_trained_tsm_and_c3d_reach_their_bound_at_the_last_layer(demo: dict[str, torch.nn.Module]) -> None:
    models = {s: demo[s] for s in ("tsn", "tsm", "c3d")}
    clips = {s: input_clips(m, wb.demo_probe_dir(), count=1, frames=2 * max(layer_bounds(m).values()) + 1)
             for s, m in models.items()}
    summary = reach_summary(receptive_field(models, clips, probes=2)).set_index(["model", "layer"])
    assert summary.loc[("tsm", "layer4"), "bound"] == 4 and summary.loc[("c3d", "layer4"), "bound"] == 8
    for scheme in ("tsm", "c3d"):
        assert summary.loc[(scheme, "layer4"), "reached"] == summary.loc[(scheme, "layer4"), "bound"]
    assert (summary.loc["tsn", "reached"] == 0).all()


def test_time_pooling_is_exactly_order_invariant() -> None:
    values = torch.randn(3, 8, 5, generator=torch.Generator().manual_seed(0))
    shuffled = values[:, torch.randperm(8, generator=torch.Generator().manual_seed(1))]
    assert torch.equal(pool_time(values), pool_time(shuffled))
    assert torch.allclose(pool_time(values), values.mean(dim=1), atol=1e-6)


def test_logistic_probe_and_grouped_folds() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    assert (fit_logistic(x, y).predict(x) == y).mean() > 0.95
    same = fit_logistic(np.zeros((10, 3)), np.tile([1, 0], 5))  # no signal: one prediction for all
    assert len(set(same.predict(np.zeros((4, 3))).tolist())) == 1
    folds = grouped_folds(23, 5, seed=3)
    assert sorted(np.bincount(folds).tolist()) == [4, 4, 5, 5, 5]
    assert np.array_equal(folds, grouped_folds(23, 5, seed=3))


def test_arrow_of_time_is_exactly_half_where_order_is_invisible(demo: dict[str, torch.nn.Module]) -> None:
    models = {"tiny-tsn": tiny("tsn"), "tsn": demo["tsn"], "gsm": demo["gsm"], "c3d": demo["c3d"]}
    result = arrow_of_time(models, wb.demo_probe_dir(), bootstrap=200)
    assert result.videos == 20  # the shipped probe's 10 temporal classes x 2; static classes have no arrow
    summary = result.summary.set_index(["model", "layer"])
    assert list(result.summary.columns) == ["model", "layer", "accuracy", "ci_low", "ci_high"]
    for model in ("tiny-tsn", "tsn"):  # every TSN layer pools per-frame features: order-invariant
        rows = summary.loc[model]
        assert (rows[["accuracy", "ci_low", "ci_high"]] == 0.5).all().all()
    for model in ("gsm", "c3d"):
        assert summary.loc[(model, "stem"), "accuracy"] == 0.5  # the stem sees one frame
        last = summary.loc[(model, "logits")]
        assert last["accuracy"] >= 0.8 and last["ci_low"] > 0.5, (model, last.to_dict())
    videos = result.results[(result.results["model"] == "gsm") & (result.results["layer"] == "logits")]
    assert len(videos) == 20 and videos["reversed_to_forward"].sum() == 10  # each pair's second class


def test_static_dynamic_known_answers_on_arrays() -> None:
    rng = np.random.default_rng(0)
    a, m_a, m_b = rng.normal(size=(3, 40, 6))
    # appearance pairs identical, motion pairs: b = a on units 0-2, b independent on 3-5, reverse of b
    # independent of a everywhere
    m_b[:, :3] = m_a[:, :3]
    layer, units = scores((a, a.copy()), (m_a, m_b, rng.normal(size=(40, 6))))
    assert units["static"].to_numpy() == pytest.approx(np.ones(6))
    assert (units["dynamic"][:3] > 0.6).all() and (units["dynamic"][3:].abs() < 0.5).all()
    order_blind, units = scores((a, a), (m_a, m_b, m_b))
    assert order_blind["dynamic"] == 0.0 and (units["dynamic"] == 0.0).all()
    assert order_blind["dynamic_units"] == 0.0 and order_blind["static_units"] == 1.0


@pytest.fixture(scope="module")
def pair_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return probe.write_pair_dataset(tmp_path_factory.mktemp("pairs") / "pairs", 1, seed=3, frames=16, size=48,
                                    progress=False)


def test_tsn_dynamic_score_is_zero(demo: dict[str, torch.nn.Module], pair_set: Path) -> None:
    models = {"tiny-tsn": tiny("tsn"), "tsn": demo["tsn"], "c3d": demo["c3d"]}
    result = static_dynamic(models, pair_set)
    assert result.pairs == {"appearance": 14, "motion": 14}
    summary = result.summary.set_index(["model", "layer"])
    assert list(result.summary.columns[:4]) == ["model", "layer", "static", "dynamic"]
    for model in ("tiny-tsn", "tsn"):
        assert (summary.loc[model, "dynamic"] == 0.0).all()
        assert (summary.loc[model, ["dynamic_units", "joint_units"]] == 0.0).all().all()
        assert (summary.loc[model, "static"] > 0.5).all()
    assert summary.loc[("c3d", "stem"), "dynamic"] == 0.0  # the 3D stem is 1x3x3: no order either
    assert summary.loc[("c3d", "logits"), "dynamic"] > 0.3  # a trained temporal model encodes the motion
    units = result.units
    assert set(units["encodes"]) <= {"static", "dynamic", "joint", "none"}
    assert len(units[(units["model"] == "tsn") & (units["layer"] == "logits")]) == 14


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.nn.Module]:
    """Release layouts with seeded weights, saved under their file names and loaded (tests/test_official)."""
    from .test_official import OVERRIDES, reference, release_dict

    root, models = tmp_path_factory.mktemp("releases"), {}
    for name in ("tsm_resnet50_sthv1_8f", "tsn_resnet50_kinetics_5f", "tsm_mobilenetv2_kinetics_8f",
                 "gsm_bninception_sthv1_8f"):
        ref = reference(name)
        data = release_dict(ref)
        if name.startswith("gsm"):
            data["best_prec1"] = torch.tensor(49.0)
        torch.save(data, root / ref["filename_hint"])
        models[name] = wb.load_model(root / ref["filename_hint"], **OVERRIDES.get(name, {}))
    return models


def test_release_layouts_have_named_stages_and_bounds(releases: dict[str, torch.nn.Module]) -> None:
    bounds = {name: layer_bounds(model) for name, model in releases.items()}
    # TSM shifts every ResNet-50 block (16) and 10 of MobileNetV2's; the 10 GSM modules of BN-Inception
    # each reach 2 frames
    expected = {"stem": 0, "layer1": 3, "layer2": 7, "layer3": 13, "layer4": 16, "logits": 16}
    assert bounds["tsm_resnet50_sthv1_8f"] == expected
    assert set(bounds["tsn_resnet50_kinetics_5f"].values()) == {0}
    assert list(bounds["tsm_mobilenetv2_kinetics_8f"])[:2] == ["features.0", "features.1"]
    assert bounds["tsm_mobilenetv2_kinetics_8f"]["logits"] == 10
    assert bounds["gsm_bninception_sthv1_8f"] == {"features": 20, "logits": 20}


@pytest.mark.slow
def test_release_tsm_influence_stops_at_its_bound(releases: dict[str, torch.nn.Module]) -> None:
    model = releases["tsm_resnet50_sthv1_8f"]
    clip = torch.randn(1, 9, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    summary = reach_summary(receptive_field({"tsm": model}, {"tsm": [clip]}, probes=1)).set_index("layer")
    assert summary.loc["layer1", "reached"] == 3 and summary.loc["layer2", "reached"] == 7
    assert (summary.loc[["layer3", "layer4"], "reached"] == 8).all()  # the clip's longest offset
