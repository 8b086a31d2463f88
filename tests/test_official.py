"""Official GSM / GSF / TSM release layouts: seeded checkpoints in the exact released layout, loaded by
`load_official`, must reproduce the official code's logits (tests/fixtures/official/*.json, produced
by running the authors' code on CPU; see /work/shared/refdata/README.md)."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import pytest
import torch

from workbench.errors import CheckpointError
from workbench.models.checkpoint import read_checkpoint
from workbench.models.official import load_official
from workbench.models.official.layouts import detect_layout, release_state
from workbench.models.temporal import GateShift, GateShiftFuse, TemporalShift

FIXTURES = Path(__file__).parent / "fixtures" / "official"
# gsm_bninception_* and tsm_resnet50_* as shipped in /work/shared/refdata; the others generated the
# same way (official code on CPU, seeded weights; the generators reproduce the shipped two exactly)
LAYOUTS = [
    "gsm_bninception_sthv1_8f", "tsm_resnet50_sthv1_8f",
    "tsn_resnet50_kinetics_5f", "tsm_mobilenetv2_kinetics_8f", "gsm_inceptionv3_sthv1_8f",
    "gsm_inceptionv3_diving48_16f", "gsf_bninception_sthv1_8f", "gsf_inceptionv3_sthv1_8f",
    "gsf_resnet50_sthv1_8f",
]
# what a user must tell the loader because the file cannot say it (here: beats the file name too)
OVERRIDES: dict[str, dict] = {"gsm_inceptionv3_diving48_16f": {"frames": 16}}


def reference(name: str) -> dict:
    """One reference JSON (layout, schema, official logits)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def seeded_tensor(key: str, shape: tuple[int, ...], dtype: torch.dtype, keys: set[str]) -> torch.Tensor:
    """The reference recipe: each tensor seeded by crc32 of its own key, kind chosen by its name."""
    if key.endswith("num_batches_tracked") or not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    is_bn_weight = key.endswith("weight") and key[: -len("weight")] + "running_mean" in keys
    if key.endswith("running_var"):
        value = 0.5 + torch.rand(shape, generator=g)
    elif key.endswith("running_mean"):
        value = 0.1 * torch.randn(shape, generator=g)
    elif len(shape) == 1 and is_bn_weight:
        value = 1.0 + 0.1 * torch.randn(shape, generator=g)
    elif len(shape) == 1 and key.endswith("bias"):
        value = 0.1 * torch.randn(shape, generator=g)
    elif len(shape) >= 2:
        value = torch.randn(shape, generator=g) * math.sqrt(2.0 / math.prod(shape[1:]))
    else:
        value = 0.1 * torch.randn(shape, generator=g)
    return value.float()


def seeded_state(schema: list) -> dict[str, torch.Tensor]:
    """{key: seeded tensor} for a `[key, shape, dtype]` schema, in the file's key order."""
    keys = {k for k, _, _ in schema}
    dtypes = {k: getattr(torch, str(dt).removeprefix("torch.")) for k, _, dt in schema}
    return {k: seeded_tensor(k, tuple(int(s) for s in shape), dtypes[k], keys) for k, shape, _ in schema}


def seeded_clip(batch: int, frames: int, size: int, seed: int = 0) -> torch.Tensor:
    """The reference input: standard normal (B, T, 3, S, S), fed as if already normalised."""
    return torch.randn((batch, frames, 3, size, size), generator=torch.Generator().manual_seed(seed))


def release_dict(ref: dict) -> dict:
    """A checkpoint dict laid out exactly like the release's training script saves it."""
    ck = ref["checkpoint"]
    return {**ck["example_values"], ck["state_dict_entry"]: seeded_state(ref["state_dict_schema"])}


@pytest.fixture(scope="module")
def release_files(tmp_path_factory) -> dict[str, Path]:
    """Seeded release files on disk under their released file names."""
    root = tmp_path_factory.mktemp("releases")
    files = {}
    for name in LAYOUTS:
        ref = reference(name)
        path = root / ref["filename_hint"]
        data = release_dict(ref)
        if name.startswith(("gsm", "gsf")):
            # the GSM/GSF releases store their accuracy as a 0-d tensor (CUDA there, CPU here)
            data["best_prec1"] = torch.tensor(49.01)
        torch.save(data, path)
        files[name] = path
    return files


def relative_error(y: torch.Tensor, expected: list) -> float:
    """max|y - expected| / max|expected| (the references' metric)."""
    e = torch.tensor(expected, dtype=y.dtype)
    return ((y - e).abs().max() / e.abs().max()).item()


def test_seeded_recipe_reproduces_reference_checks() -> None:
    """Our re-implementation of the seeding recipe gives the reference's own checksums."""
    for name in ("gsm_bninception_sthv1_8f", "tsm_resnet50_sthv1_8f"):
        ref = reference(name)
        state = seeded_state(ref["state_dict_schema"])
        check = ref["seeded_state_dict_check"]
        total = sum(t.double().sum().item() for t in state.values())
        assert total == pytest.approx(check["total_sum_float64"], rel=1e-9)
        first = state[check["first_weight_key"]].flatten()[:4].tolist()
        assert first == pytest.approx(check["first_weight_first4"], abs=1e-7)
    clip = seeded_clip(2, 8, 224)
    assert clip.double().sum().item() == pytest.approx(ref["seeded_input"]["check"]["sum"], rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("name", LAYOUTS)
def test_release_reproduces_official_logits(name: str, release_files: dict[str, Path]) -> None:
    """Seeded release file -> load_official -> float32 and float64 logits equal the official code's."""
    ref = reference(name)
    path = release_files[name]
    model = load_official(read_checkpoint(path), str(path), **OVERRIDES.get(name, {}))
    assert model is not None and not model.training
    assert model.spec.num_classes == ref["num_classes"] and model.spec.frames == ref["frames"]
    inp = ref["input_spec"]
    assert model.spec.channel_order == inp["channel_order"]
    assert model.spec.input_size == inp["input_size"] and model.spec.resize_to == inp["scale_size"]
    assert model.spec.value_scale == float(inp["value_range"][1])
    assert list(model.spec.mean) == pytest.approx(inp["mean"])
    clip = seeded_clip(ref["seeded_input"]["batch"], ref["frames"], inp["input_size"])
    with torch.no_grad():
        if ref["tolerance"]["float32_rel"] is not None:
            y32 = model(clip)
            assert relative_error(y32, ref["expected_logits"]) <= ref["tolerance"]["float32_rel"]
        # else float32 is chaotic in that model (GSF ResNet-50, see the fixture's notes): float64 only
        y64 = model.double()(clip.double())
    err64 = relative_error(y64, ref["expected_logits_float64"])
    assert err64 <= ref["tolerance"]["float64_rel"], f"{name}: float64 relative error {err64:.3g}"


def test_layouts_are_recognised_with_their_release_preprocessing(release_files: dict[str, Path]) -> None:
    """Keys name the layout; the spec carries the release's input convention and temporal operators."""
    gsm = load_official(read_checkpoint(release_files["gsm_bninception_sthv1_8f"]), "x_segment8.pth")
    assert gsm.spec.layout == "gsm-bninception" and gsm.spec.scheme == "gsm"
    assert (gsm.spec.channel_order, gsm.spec.value_scale) == ("BGR", 255.0)
    assert gsm.spec.mean == (104.0, 117.0, 128.0) and gsm.spec.std == (1.0, 1.0, 1.0)
    ops = gsm.temporal_ops()
    assert len(ops) == 10 and all(isinstance(m, GateShift) and m.interleave for _, m in ops)
    assert ops[0][0] == "base_model.gsm_inception_3a_1x1"
    assert gsm.extra["best_prec1"] == pytest.approx(49.01)  # 0-d tensor in the file -> float
    tsm_path = release_files["tsm_resnet50_sthv1_8f"]
    tsm = load_official(read_checkpoint(tsm_path), str(tsm_path))
    assert tsm.spec.layout == "tsm-resnet50" and tsm.spec.channel_order == "RGB"
    assert tsm.spec.value_scale == 1.0 and tsm.spec.std == pytest.approx((0.229, 0.224, 0.225))
    shifts = tsm.temporal_ops()
    assert len(shifts) == 16
    assert all(isinstance(m, TemporalShift) and m.fold == m.channels // 8 for _, m in shifts)
    assert tsm.spec.options["shift_div"] == 8  # from the file name "..._shift8_blockres_..."
    tsn_path = release_files["tsn_resnet50_kinetics_5f"]
    tsn = load_official(read_checkpoint(tsn_path), str(tsn_path))
    assert tsn.spec.layout == "tsn-resnet50" and tsn.temporal_ops() == [] and tsn.spec.frames == 5
    mobile_path = release_files["tsm_mobilenetv2_kinetics_8f"]
    mobile = load_official(read_checkpoint(mobile_path), str(mobile_path))
    assert mobile.spec.layout == "tsm-mobilenetv2" and mobile.spec.num_classes == 400
    # TSM shifts the 10 inverted-residual blocks that keep their shape (residual connection)
    assert [n for n, _ in mobile.temporal_ops()][:2] == [
        "base_model.features.3.conv.0.shift", "base_model.features.5.conv.0.shift"
    ]
    assert len(mobile.temporal_ops()) == 10


def test_overrides_beat_the_file_name(release_files: dict[str, Path], tmp_path: Path) -> None:
    """frames=16 wins over `segment8`; shift_div=4 over `shift8`; classes come from a labels file."""
    path = release_files["tsm_resnet50_sthv1_8f"]
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"action {i}" for i in range(174)) + "\n")
    model = load_official(read_checkpoint(path), str(path), frames=16, shift_div=4, classes=str(labels))
    assert model.spec.frames == 16 and model.spec.class_names[5] == "action 5"
    _, op = model.temporal_ops()[0]
    assert model.frames == 16 and op.fold == op.channels // 4
    with pytest.raises(CheckpointError, match="173 class names given, the file's classifier has 174"):
        load_official(read_checkpoint(path), str(path), classes=[f"c{i}" for i in range(173)])


def test_frames_must_come_from_somewhere(release_files: dict[str, Path]) -> None:
    """A file renamed without `segmentN` and no frames override cannot be run: say so."""
    data = read_checkpoint(release_files["gsm_bninception_sthv1_8f"])
    with pytest.raises(CheckpointError, match=r"does not record its number of frames; give frames="):
        load_official(data, "my_gsm_model.pth")
    assert load_official(data, "my_gsm_model.pth", frames=16).spec.frames == 16


def test_wrong_backbone_override_names_the_problem(release_files: dict[str, Path]) -> None:
    """A BN-Inception GSM file told it is ResNet-50, and a ResNet-50 file told ResNet-101, fail clearly."""
    data = read_checkpoint(release_files["gsm_bninception_sthv1_8f"])
    told = "told backbone 'resnet50', but the file looks like a GSM bninception"
    with pytest.raises(CheckpointError, match=told):
        load_official(data, "gsm_segment8.pth", backbone="resnet50")
    tsm = read_checkpoint(release_files["tsm_resnet50_sthv1_8f"])
    with pytest.raises(CheckpointError) as err:
        load_official(tsm, "tsm_segment8.pth", backbone="ResNet101")
    msg = str(err.value)
    assert "weights do not fit a TSM resnet101 model" in msg and "missing: base_model.layer3.10" in msg
    assert "looks like a TSM resnet50 release with 174 classes, 16 shifted blocks" in msg


def test_inceptionv3_file_told_bninception(release_files: dict[str, Path]) -> None:
    """An InceptionV3 GSM release told it is BN-Inception: the keys that do not fit are listed."""
    path = release_files["gsm_inceptionv3_sthv1_8f"]
    with pytest.raises(CheckpointError) as err:
        load_official(read_checkpoint(path), str(path), backbone="BN-Inception")
    msg = str(err.value)
    assert "weights do not fit a GSM bninception model" in msg
    assert "unexpected: base_model.conv_1_Conv2D.bias" in msg
    assert "missing: base_model.conv1_7x7_s2.bias" in msg
    assert "looks like a GSM inceptionv3 release with 174 classes, 10 gate modules" in msg
    model = load_official(read_checkpoint(path), str(path))
    assert model.spec.layout == "gsm-inceptionv3" and model.spec.input_size == 229 and model.spec.frames == 8
    assert model.spec.resize_to == 261 and len(model.temporal_ops()) == 10


def test_gsm_weights_under_gsf_entry_are_not_loaded_as_gsf(release_files: dict[str, Path]) -> None:
    """GSM keys saved under GSF's `model_state_dict`: GSF is expected, the gate keys do not fit it."""
    data = read_checkpoint(release_files["gsm_bninception_sthv1_8f"])
    gsf = {"epoch": 1, "model_state_dict": data["state_dict"]}
    assert detect_layout(*release_state(gsf)).name == "gsf-bninception"
    with pytest.raises(CheckpointError) as err:
        load_official(gsf, "gsf_segment8.pth")
    msg = str(err.value)
    assert "weights do not fit a GSF bninception model" in msg
    assert "missing: base_model.gsf_inception_3a_1x1.bn.bias" in msg
    assert "unexpected: base_model.gsm_inception_3a_1x1.bn.bias" in msg


def test_gsf_layouts_and_channel_ratio(release_files: dict[str, Path]) -> None:
    """GSF files: the release's module names, 10/11/16 modules, ratio read back from the gate shapes."""
    inc = load_official(read_checkpoint(release_files["gsf_inceptionv3_sthv1_8f"]), "x_segment8.pth")
    assert inc.spec.layout == "gsf-inceptionv3" and inc.spec.scheme == "gsf"
    assert (inc.spec.channel_order, inc.spec.input_size, inc.spec.mean) == ("BGR", 229, (104.0, 117.0, 128.0))
    names = [n for n, _ in inc.temporal_ops()]
    # GSF gates mixed_3's 3x3/2 conv and mixed_6, where GSM gates mixed_3's tower and skips mixed_6
    assert len(names) == 11 and "base_model.gsf_mixed_3_conv_Conv2D" in names
    assert "base_model.gsf_mixed_6_conv_Conv2D" in names
    assert inc.spec.options["gsf_channel_ratio"] == 100.0
    resnet_path = release_files["gsf_resnet50_sthv1_8f"]
    resnet = load_official(read_checkpoint(resnet_path), str(resnet_path))
    assert resnet.spec.layout == "gsf-resnet50" and resnet.spec.channel_order == "RGB"
    assert resnet.spec.frames == 8  # from "..._segment8_checkpoint.pth.tar"
    ops = resnet.temporal_ops()
    assert len(ops) == 16 and all(isinstance(m, GateShiftFuse) for _, m in ops)
    name, first = ops[0]
    # the fixture was made with the GSF ResNet default gsf_ch_ratio=25: 64 of layer1's 256 channels
    assert name == "base_model.layer1.0.gsf" and (first.channels, first.total_channels) == (64, 256)
    assert ops[-1][1].channels == 512 and resnet.spec.options["gsf_channel_ratio"] == 25.0
    state = resnet.state_dict()
    assert "base_model.layer1.0.gsf.channel_conv2.weight" in state
    assert not any(".fusion." in k for k in state)


def test_gsf_gates_only_the_first_channels(release_files: dict[str, Path]) -> None:
    """GSF ResNet (ratio 25): channels past the gated ones leave the module unchanged."""
    resnet = load_official(read_checkpoint(release_files["gsf_resnet50_sthv1_8f"]), "r_segment4.pth")
    op = resnet.base_model.layer1[0].gsf
    x = torch.randn(4, 256, 6, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = op(x, frames=4)
    assert torch.equal(y[:, 64:], x[:, 64:])
    assert (y[:, :64] - x[:, :64]).abs().max() > 0.1


@pytest.mark.parametrize(
    ("name", "told", "expected"),
    [
        ("gsf_inceptionv3_sthv1_8f", "BN-Inception",
         ["weights do not fit a GSF bninception model", "unexpected: base_model.conv_1_Conv2D.bias",
          "looks like a GSF inceptionv3 release with 174 classes, 11 gate modules"]),
        ("gsf_bninception_sthv1_8f", "inceptionv3",
         ["weights do not fit a GSF inceptionv3 model", "missing: base_model.conv_1_Conv2D.bias",
          "looks like a GSF bninception release with 174 classes, 10 gate modules"]),
        ("gsf_resnet50_sthv1_8f", "resnet101",
         ["weights do not fit a GSF resnet101 model", "missing: base_model.layer3.10",
          "looks like a GSF resnet50 release with 174 classes, 16 gate modules"]),
        ("gsf_resnet50_sthv1_8f", "mobilenetv2",
         ["told backbone 'mobilenetv2', but the file looks like a GSF resnet50 release"]),
        ("gsm_inceptionv3_diving48_16f", "bninception",
         ["weights do not fit a GSM bninception model",
          "looks like a GSM inceptionv3 release with 48 classes, 10 gate modules"]),
    ],
)
def test_wrong_backbone_override_on_new_layouts(
    name: str, told: str, expected: list[str], release_files: dict[str, Path]
) -> None:
    """A GSF/GSM file told the wrong backbone fails with what does not fit and what the file is."""
    with pytest.raises(CheckpointError) as err:
        load_official(read_checkpoint(release_files[name]), "x_segment8.pth", backbone=told)
    for part in expected:
        assert part in str(err.value)


def test_only_absent_num_batches_tracked_is_tolerated(release_files: dict[str, Path]) -> None:
    """Old-PyTorch files lack every num_batches_tracked: fine. Any other missing key: an error."""
    data = read_checkpoint(release_files["gsm_bninception_sthv1_8f"])
    full = data["state_dict"]
    old = {k: v for k, v in full.items() if not k.endswith("num_batches_tracked")}
    assert len(full) - len(old) == 79
    model = load_official({**data, "state_dict": old}, "old_segment8.pth")
    gate = model.base_model.gsm_inception_4e_3x3_reduce.conv3D.weight
    assert torch.equal(gate, full["module.base_model.gsm_inception_4e_3x3_reduce.conv3D.weight"])
    broken = dict(old)
    del broken["module.base_model.inception_5b_pool_proj_bn.running_var"]
    with pytest.raises(CheckpointError, match=r"1 missing: base_model.inception_5b_pool_proj_bn.running_var"):
        load_official({**data, "state_dict": broken}, "old_segment8.pth")
    partial = dict(full)
    del partial["module.base_model.conv1_7x7_s2_bn.num_batches_tracked"]  # some present, one absent
    with pytest.raises(CheckpointError, match="missing: base_model.conv1_7x7_s2_bn.num_batches_tracked"):
        load_official({**data, "state_dict": partial}, "x_segment8.pth")


def test_not_a_release_returns_none() -> None:
    """Workbench files and unrelated dicts are not ours to load."""
    assert load_official({"format": "gate-shift-workbench", "state_dict": {}}, "a.pt") is None
    assert load_official({"state_dict": {"conv.weight": torch.zeros(1)}}, "b.pt") is None
    assert load_official({"weights": [1, 2]}, "c.pt") is None
