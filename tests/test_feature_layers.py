"""Feature stages found for every loadable layout family: Grad-CAM without a named layer runs on each
(seeded stand-in release files, the shipped demo zoo), and a layer a model lacks is one error listing
the model's own stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from analysis import attribution
from workbench.cli import main
from workbench.demo import demo_checkpoints, demo_probe_dir
from workbench.errors import CheckpointError, OptionError
from workbench.models import load_model
from workbench.models.feature_layers import default_stage, feature_stage, stage_names
from workbench.models.official import load_official
from workbench.models.releases import load_release

from . import release_files, test_official
from .test_app import APP, error_texts, one_thread  # noqa: F401 (one_thread: the module's autouse fixture)

INCEPTION_BLOCKS = [f"inception_{b}" for b in ("3a", "3b", "3c", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]
# reference -> (load overrides that keep it cheap, the expected default stage); S3D and C3D at their size
OFFICIAL = {
    "gsm_bninception_sthv1_8f": ({"frames": 2}, "inception_5b"),
    "gsf_bninception_sthv1_8f": ({"frames": 2}, "inception_5b"),
    "gsm_inceptionv3_sthv1_8f": ({"frames": 2}, "mixed_10"),
    "tsm_resnet50_sthv1_8f": ({"frames": 2, "input_size": 64}, "layer4"),
    "gsf_resnet50_sthv1_8f": ({"frames": 2, "input_size": 64}, "layer4"),
    "tsm_mobilenetv2_kinetics_8f": ({"frames": 2, "input_size": 64}, "features.18"),
}
RELEASES = {
    "tv_r3d_18_k400": ({"frames": 8, "input_size": 64}, "layer4"),
    "tv_mc3_18_k400": ({"frames": 8, "input_size": 64}, "layer4"),
    "tv_r2plus1d_18_k400": ({"frames": 8, "input_size": 64}, "layer4"),
    "tv_s3d_k400": ({}, "mixed_5c"),
    "mma_tsn_r50_k400_3f": ({"frames": 2, "input_size": 64}, "layer4"),
    "mma_tsm_r50_sthv2_8f": ({"frames": 4, "input_size": 64}, "layer4"),
    "mma_i3d_r50_k400_32f": ({"frames": 8, "input_size": 64}, "layer4"),
    "mma_r2plus1d_r34_k400_8f": ({"frames": 4, "input_size": 64}, "layer4"),
    "mma_ircsn_r50_k400_32f": ({"frames": 4, "input_size": 64}, "layer4"),
    "mma_c3d_ucf101_16f": ({}, "conv5b"),
}


def _official(name: str, **overrides: object) -> torch.nn.Module:
    ref = test_official.reference(name)
    return load_official(test_official.release_dict(ref), ref["filename_hint"], **overrides)


def _release(name: str, **overrides: object) -> torch.nn.Module:
    ref = release_files.reference(name)
    return load_release(release_files.release_data(ref), ref["filename_hint"], **overrides)


def _check_gradcam(model: torch.nn.Module, expected: str) -> None:
    """Grad-CAM with no layer named: on the expected last stage, a finite (T, H, W) map >= 0."""
    spec = model.spec
    clip = torch.randn(1, spec.frames, 3, spec.input_size, spec.input_size,
                       generator=torch.Generator().manual_seed(0))
    assert default_stage(model).name == expected == stage_names(model)[-1]
    cam = attribution.attribute(model, clip, "gradcam", target=0)
    assert cam.options["layer"] == expected
    assert cam.map.shape == (spec.frames, spec.input_size, spec.input_size)
    assert np.isfinite(cam.map).all() and (cam.map >= 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OFFICIAL))
def test_gradcam_finds_the_last_stage_of_official_releases(name: str) -> None:
    overrides, expected = OFFICIAL[name]
    _check_gradcam(_official(name, **overrides), expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RELEASES))
def test_gradcam_finds_the_last_stage_of_torchvision_and_mmaction_layouts(name: str) -> None:
    overrides, expected = RELEASES[name]
    _check_gradcam(_release(name, **overrides), expected)


@pytest.mark.parametrize("scheme", list(demo_checkpoints()))
def test_gradcam_finds_layer4_of_every_demo_scheme(scheme: str) -> None:
    """Our ResNets, 2D and 3D schemes alike: stages layer1..layer4 in forward order, layer4 the default."""
    model = load_model(demo_checkpoints()[scheme])
    assert stage_names(model) == ["layer1", "layer2", "layer3", "layer4"]
    _check_gradcam(model, "layer4")


def test_inception_blocks_are_stages_in_forward_order_without_new_weights() -> None:
    """BN-Inception's ten blocks are its stages; marking them adds no key to the release's state."""
    model = _official("gsm_bninception_sthv1_8f", frames=2)
    assert stage_names(model) == INCEPTION_BLOCKS
    ref = test_official.reference("gsm_bninception_sthv1_8f")
    assert len(model.state_dict()) == len(ref["state_dict_schema"])
    assert feature_stage(model, "base_model.inception_4e").name == "inception_4e"  # a module path works too


def test_unknown_layer_lists_the_models_stages() -> None:
    model = _official("gsm_bninception_sthv1_8f", frames=2)
    clip = torch.zeros(1, 2, 3, 224, 224)
    listed = r"no layer 'layer4'; its feature layers: inception_3a, .*inception_5b \(default inception_5b\)"
    with pytest.raises(OptionError, match=listed):
        attribution.attribute(model, clip, "gradcam", target=0, layer="layer4")


def test_unknown_layer_on_the_cli_is_one_line_before_any_work(tmp_path: Path, capsys) -> None:
    video = next(demo_probe_dir().rglob("*.mp4"))
    code = main(["attribute", str(video), "--model", str(demo_checkpoints()["gsm"]), "--methods", "gradcam",
                 "--method-option", "gradcam.layer=layer9", "--out", str(tmp_path / "run")])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1
    assert "'layer9'" in errors[0] and "layer1, layer2, layer3, layer4 (default layer4)" in errors[0]
    assert not (tmp_path / "run" / "run.json").exists()


def test_a_clip_size_the_release_cannot_take_is_refused_at_load() -> None:
    """BN-Inception's fixed 7x7 pool cannot run below 224 px: refused by the loader, not by an analysis."""
    with pytest.raises(CheckpointError, match="cannot run on 2 frames of 112x112 px"):
        _official("gsm_bninception_sthv1_8f", frames=2, input_size=112)


@pytest.mark.slow
def test_attribution_page_lists_a_release_models_own_stages(tmp_path: Path) -> None:
    """The Grad-CAM picker of a BN-Inception release: its ten blocks, the last one preselected."""
    ref = test_official.reference("gsm_bninception_sthv1_8f")
    path = tmp_path / ref["filename_hint"]
    torch.save(test_official.release_dict(ref), path)
    at = AppTest.from_file(APP, default_timeout=600).run()
    (models,) = [m for m in at.sidebar.multiselect if m.label == "Models to compare"]
    models.set_value([])
    at.run()
    at.sidebar.text_input(key="checkpoint_options").input("frames=2")
    at.sidebar.text_input(key="checkpoint_path").input(str(path))
    at.run()
    assert not at.exception and not error_texts(at), error_texts(at)
    at.query_params["methods"] = "gradcam"
    at.switch_page("app_pages/attribution.py").run()
    assert not at.exception and not error_texts(at), (at.exception, error_texts(at))
    picker = at.selectbox(key="attr_layer")
    assert picker.options == INCEPTION_BLOCKS and picker.value == "inception_5b"
    assert at.dataframe[0].value["method"].tolist() == ["Grad-CAM"]
