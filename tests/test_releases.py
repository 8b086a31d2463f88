"""torchvision and MMAction2 releases: seeded files in the exact released layouts load strictly into our
models and reproduce the upstream code's logits (tests/fixtures/releases/*.json, made by running
torchvision 0.28 / MMAction2 @4d6c934 on CPU; see its README); look-alikes and wrong overrides are one
clear error; a loaded release is inspected, re-saved and analysed like any model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import workbench as wb
from workbench.cli import main
from workbench.errors import CheckpointError
from workbench.models.base import VideoModel
from workbench.models.mmaction import parse_config
from workbench.models.resnet import VideoResNet
from workbench.models.state import state_mismatch

from .release_files import LAYOUTS, reference, release_data, write_release
from .test_official import relative_error, seeded_clip

MMA_MEAN = [123.675, 116.28, 103.53]


def reference_clip(ref: dict) -> torch.Tensor:
    """The reference input (B, T, 3, H, W), standard normal, seed 0."""
    si = ref["seeded_input"]
    return torch.randn((si["batch"], si["frames"], 3, si["height"], si["width"]),
                       generator=torch.Generator().manual_seed(si["seed"]))


def test_seeded_input_is_the_references_recipe() -> None:
    """The square input of the shipped references is the official tests' seeded clip."""
    ref = reference("mma_tsm_r50_sthv2_8f")
    assert torch.equal(reference_clip(ref), seeded_clip(2, 8, 224))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_release_reproduces_upstream_logits(name: str, tmp_path: Path, capsys) -> None:
    """Seeded release file -> inspect and load_model -> the upstream float64 and float32 logits."""
    ref = reference(name)
    layout, scheme, backbone = LAYOUTS[name]
    path = write_release(name, tmp_path)
    assert main(["inspect", str(path), "--format", "json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert (described["layout"], described["scheme"], described["backbone"]) == (layout, scheme, backbone)
    assert described["num_classes"] == ref["num_classes"] and described["frames"] == ref["frames"]
    assert described["gflops"] > 0 and described["params"] > 0
    model = wb.load_model(path)
    path.unlink()
    spec = model.spec
    assert isinstance(model, VideoModel) and not model.training
    assert isinstance(model, VideoResNet) == backbone.startswith("resnet")  # our backbone where it is one
    assert (spec.layout, spec.scheme, spec.backbone) == (layout, scheme, backbone)
    assert spec.num_classes == ref["num_classes"] and spec.frames == ref["frames"]
    assert sum(p.numel() for p in model.parameters()) == described["params"]
    inp = ref["input_spec"]
    # the shipped MMAction2 reference does not record the resize: its meta.cfg's val pipeline says 256
    resize = inp.get("resize", 256)
    resize = resize[0] if isinstance(resize, list) else resize
    assert (spec.input_size, spec.resize_to, spec.channel_order) == (inp["input_size"], resize, "RGB")
    assert spec.value_scale == float(inp["value_range"][1])
    assert list(spec.mean) == pytest.approx(inp["mean"]) and list(spec.std) == pytest.approx(inp["std"])
    clip = reference_clip(ref)
    with torch.no_grad():
        err32 = relative_error(model(clip), ref["expected_logits"])
        err64 = relative_error(model.double()(clip.double()), ref["expected_logits_float64"])
    assert err32 <= ref["tolerance"]["float32_rel"], f"{name}: float32 relative error {err32:.3g}"
    assert err64 <= ref["tolerance"]["float64_rel"], f"{name}: float64 relative error {err64:.3g}"


def test_kinetics_class_names_come_with_kinetics_heads() -> None:
    """torchvision's 400-class heads and MMAction2 Kinetics-400 configs name their classes; others do not."""
    names = (Path(wb.__file__).parent / "assets" / "labels" / "kinetics400.txt").read_text().splitlines()
    assert len(names) == 400 and names[:2] == ["abseiling", "air drumming"] and names[-1] == "zumba"
    cfg = parse_config(reference("mma_i3d_r50_k400_32f")["checkpoint"]["example_values"]["meta"]["cfg"])
    assert cfg["model"]["cls_head"]["num_classes"] == 400 and "kinetics400" in cfg["ann_file_train"]


# --- files that are not what they look like, and overrides that do not fit: one clear error -------------

def _fake(state_shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.zeros(shape) for k, shape in state_shapes.items()}


def _mma(name: str, state: dict[str, torch.Tensor], with_cfg: bool = True) -> dict:
    meta = reference(name)["checkpoint"]["example_values"]["meta"]
    return {"meta": dict(meta) if with_cfg else {}, "state_dict": state}


IMAGE_RESNET = wb.build_model("tsn", backbone="resnet18", num_classes=1000).state_dict()  # torchvision names
LOOKALIKES = {
    "image_resnet.pth": (IMAGE_RESNET, r"torchvision image ResNet \(conv1\.weight \(64, 3, 7, 7\) is 2-D"),
    "slowfast.pth": ({"meta": {}, "state_dict": _fake({
        "backbone.slow_path.conv1.conv.weight": (64, 3, 1, 7, 7),
        "backbone.fast_path.conv1.conv.weight": (8, 3, 5, 7, 7),
        "cls_head.fc_cls.weight": (400, 2304)})}, r"MMAction2 SlowFast \(ResNet3dSlowFast"),
    "mvit.pth": (_fake({"conv_proj.weight": (96, 3, 3, 7, 7), "head.1.weight": (400, 768)}),
                 "MViT video transformer"),
    "x3d.pth": ({"meta": {}, "state_dict": _fake({"backbone.conv1_s.conv.weight": (24, 3, 1, 3, 3),
                                                  "cls_head.fc2.weight": (400, 2048)})},
                r"backbone \(backbone\.conv1_s\.conv\.weight, \.\.\.\) is none we load"),
    "s3d_image.pth": (_fake({"features.0.0.0.weight": (64, 3, 7, 7), "classifier.1.weight": (1000, 1024)}),
                      "looks like a torchvision image model"),
}


@pytest.mark.parametrize("file", list(LOOKALIKES))
def test_lookalike_files_are_refused_by_name(file: str, tmp_path: Path, capsys) -> None:
    """A look-alike gives one `error:` line naming the file and what it is (CLI exit 2, nothing loaded)."""
    data, message = LOOKALIKES[file]
    path = tmp_path / file
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=message):
        wb.load_model(path)
    assert main(["predict", str(path), str(wb.demo_probe_dir() / "grow" / "grow_00000.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot load {str(path)!r}")


TSM_FAKE = {"backbone.conv1.conv.weight": (64, 3, 7, 7),
            "backbone.layer4.0.conv1.conv.net.weight": (512, 1024, 1, 1),
            "cls_head.fc_cls.weight": (174, 2048)}
# the keys that say what a file is (tiny tensors: the errors come before any weight is read)
I3D_FAKE = {"backbone.conv1.conv.weight": (64, 3, 5, 7, 7), "cls_head.fc_cls.weight": (400, 2048),
            **{f"backbone.layer{s}.{b}.conv{c}.conv.weight": (1, 1, 3 if c == 1 else 1, 1, 1)
               for s, blocks in enumerate((3, 4, 6, 3), 1) for b in range(blocks) for c in (1, 3)}}
C3D_FAKE = {"backbone.conv1a.conv.weight": (64, 3, 3, 3, 3), "cls_head.fc_cls.weight": (101, 4096)}
S3D_FAKE = {"features.0.0.0.weight": (64, 3, 1, 7, 7), "classifier.1.weight": (400, 1024)}
OVERRIDES = [  # (file, overrides, what the message says)
    (_mma("mma_tsm_r50_sthv2_8f", _fake(TSM_FAKE)), {"class_names": ["a", "b"]},
     "2 class names given, the file's classifier has 174"),
    (_mma("mma_c3d_ucf101_16f", _fake(C3D_FAKE)), {"frames": 8},
     r"cannot run on 8 frames of 112x112 px \(C3D's fc6"),
    (_mma("mma_c3d_ucf101_16f", _fake(C3D_FAKE)), {"input_size": 96}, "cannot run on 16 frames of 96x96 px"),
    (_mma("mma_i3d_r50_k400_32f", _fake(I3D_FAKE)), {"frames": 4}, "cannot run on 4 frames"),  # I3D's pool2
    (_mma("mma_i3d_r50_k400_32f", _fake(I3D_FAKE), with_cfg=False), {},
     r"has no meta\.cfg to say its number of frames; give frames=N"),
    (_mma("mma_tsm_r50_sthv2_8f", _fake(TSM_FAKE)), {"backbone": "resnet101"}, "told backbone 'resnet101'"),
    (_fake(S3D_FAKE), {"frames": 8}, "cannot run on 8 frames of 224x224 px"),
    (_fake(S3D_FAKE), {"shift_div": 4}, r"override\(s\) \['shift_div'\] not allowed for a torchvision file"),
]


@pytest.mark.parametrize("case", range(len(OVERRIDES)))
def test_wrong_overrides_are_one_error_naming_the_file(case: int, tmp_path: Path, capsys) -> None:
    """Frames the network cannot take, a wrong class count, a wrong backbone, a missing frame count."""
    data, overrides, message = OVERRIDES[case]
    path = tmp_path / "release.pth"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=message) as raised:
        wb.load_model(path, **overrides)
    assert str(path) in str(raised.value)
    options = []
    for key, value in overrides.items():  # the same overrides as the CLI's --model-option
        if key == "class_names":
            labels = tmp_path / "labels.txt"
            labels.write_text("".join(f"{v}\n" for v in value))
            key, value = "classes", labels
        options.append(f"--model-option={key}={value}")
    assert main(["inspect", str(path), *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot load {str(path)!r}")


CONFIG_PROBLEMS = {  # what a meta.cfg says -> the message
    "model = dict(type='Recognizer3D', backbone=dict(type='ResNet3dSlowFast'))":
        "builds an MMAction2 ResNet3dSlowFast",
    "model = dict(type='Recognizer2D', backbone=dict(type='ResNetTSM', depth=50, temporal_pool=True))":
        "temporal_pool=True, which we do not build",
    "model = dict(type='Recognizer2D', backbone=dict(type='ResNetTSM', non_local=((0, 0), (1, 0))))":
        "non_local=",
    "model = dict(type='Recognizer2D', backbone=dict(type='ResNetTSM'), cls_head=dict(type='TPNHead'))":
        "Recognizer2D with a ResNetTSM backbone and a TPNHead",
    "model = __import__('os').system('echo pwned')":
        r"not a config text this reader understands \(line 1: Call",
    "import os\nmodel = dict()": "line 1: not a plain assignment",
}


@pytest.mark.parametrize("text", list(CONFIG_PROBLEMS))
def test_meta_cfg_is_read_not_run_and_unsupported_settings_are_named(text: str, tmp_path: Path) -> None:
    path = tmp_path / "tsm.pth"
    torch.save({"meta": {"cfg": text}, "state_dict": _fake(TSM_FAKE)}, path)
    with pytest.raises(CheckpointError, match=CONFIG_PROBLEMS[text]):
        wb.load_model(path)


def test_config_reader_reads_pretty_text_literals() -> None:
    config = parse_config("a = dict(x=1, y=[1, 2], z=(3, -4))\nb = dict({166: 167})\nc = a\nd = None")
    assert config == {"a": {"x": 1, "y": [1, 2], "z": (3, -4)}, "b": {166: 167}, "c": config["a"], "d": None}


def test_weights_that_do_not_fit_name_the_files_keys(tmp_path: Path) -> None:
    """A shape or key off in an otherwise exact file: the file's own key names, nothing loaded."""
    state = release_data(reference("tv_mc3_18_k400"))
    state["layer3.1.conv2.1.weight"] = torch.zeros(7)
    del state["fc.bias"]
    path = tmp_path / "mc3_18.pth"
    torch.save(state, path)
    fits = r"1 missing: fc\.bias; 1 wrong shape: layer3\.1\.conv2\.1\.weight: file \(7,\) vs model \(256,\)"
    with pytest.raises(CheckpointError, match=fits):
        wb.load_model(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mma_i3d_r50_k400_32f", "mma_ircsn_r50_k400_32f",
                                  "mma_r2plus1d_r34_k400_8f", "mma_tsm_r50_sthv2_8f"])
def test_mmaction_file_without_meta_cfg_is_read_from_its_shapes(name: str, tmp_path: Path) -> None:
    """Without meta.cfg: frames from the user, the rest from the shapes and the zoo config: the very
    same network as the file with its config (every stride, kernel and eps: the module reprs agree)."""
    with_cfg = wb.load_model(write_release(name, tmp_path))
    without = wb.load_model(write_release(name, tmp_path, with_meta=False), frames=with_cfg.spec.frames)
    assert repr(without) == repr(with_cfg)
    assert state_mismatch(with_cfg.state_dict(), without.state_dict()) is None
    assert without.spec.options["assumed"] and not with_cfg.spec.options["assumed"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tv_mc3_18_k400", "mma_c3d_ucf101_16f",
                                  "mma_ircsn_r50_k400_32f"])
def test_resaved_release_loads_bit_exact(name: str, tmp_path: Path) -> None:
    """load_model(release) -> save_model -> load_model: same module type, spec, tensors and logits."""
    model = wb.load_model(write_release(name, tmp_path))
    again = wb.load_model(wb.save_model(model, tmp_path / "resaved.pt"))
    assert type(again) is type(model) and again.spec == model.spec and not again.training
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    ref = reference(name)
    clip = reference_clip(ref)[:1]
    with torch.no_grad():
        assert torch.equal(again(clip), model(clip))


# --- every analysis on every kind of loaded release: our 2D and 3D backbone, the own S3D and C3D ----------

ANALYSED = {  # reference -> (load overrides that keep it cheap, the last spatial feature stage)
    "tv_mc3_18_k400": ({"frames": 8, "input_size": 64}, "layer4"),
    "mma_tsn_r50_k400_3f": ({"frames": 4, "input_size": 64}, "layer4"),
    "tv_s3d_k400": ({}, "mixed_5c"),
    "mma_c3d_ucf101_16f": ({}, "conv5b"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ANALYSED))
def test_analyses_run_on_release_models(name: str) -> None:
    """Frame-order tests and Grad-CAM (on the named last feature stage) run on a release model; gate
    analyses refuse it with the clear message they give every model without gates."""
    from analysis import attribution, temporal
    from analysis.gates import capture_gates
    from workbench.models.releases import load_release

    overrides, layer = ANALYSED[name]
    ref = reference(name)
    model = load_release(release_data(ref), ref["filename_hint"], **overrides).eval()
    video = wb.demo_probe_dir() / "move_left" / "move_left_00000.mp4"
    config = temporal.ExperimentConfig(perturbations=("reverse",), permutations=1, bootstrap=10)
    orders = temporal.clip_orders({"release": model}, video, config)
    assert set(orders.predictions["perturbation"]) == {"original", "reverse"}
    assert orders.predictions["probability"].between(0, 1).all()
    clip = wb.load_clip(video, model.spec)
    assert clip.shape == (1, model.spec.frames, 3, model.spec.input_size, model.spec.input_size)
    cam = attribution.attribute(model, clip, "gradcam", layer=layer)
    assert cam.map.shape == clip.shape[1:2] + clip.shape[3:] and (cam.map >= 0).all()
    with pytest.raises(ValueError, match="model has no gates"):
        capture_gates(model, clip)
