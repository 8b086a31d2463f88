"""The app with torchvision and MMAction2 releases: every layout is added by path (a seeded file in the
released layout, written at test time), the sidebar says what it is, and every page renders with them."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from .release_files import LAYOUTS, reference, write_release
from .test_app import APP, error_texts, one_thread  # noqa: F401 (one_thread: the module's autouse fixture)

# sidebar options per layout: a smaller crop (and clip) keeps every page cheap; C3D's fc6 fixes
# 16x112 and S3D's 2x7x7 pool needs >= 13 frames of >= 193 px, so those run at their own size
OPTIONS = {
    "tv_s3d_k400": "", "mma_c3d_ucf101_16f": "",
    "mma_i3d_r50_k400_32f": "frames=8 input_size=64",  # I3D's temporal pools need >= 5 frames
}
DEFAULT_OPTIONS = "frames=4 input_size=64"
Session = tuple[AppTest, dict[str, str]]  # the app, and the label each layout was added under


@pytest.fixture(scope="module")
def with_releases(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """A session that added every release layout by path, the demo zoo deselected first."""
    folder = tmp_path_factory.mktemp("releases")
    at = AppTest.from_file(APP, default_timeout=600).run()
    (models,) = [m for m in at.sidebar.multiselect if m.label == "Models to compare"]
    models.set_value([])
    at.run()
    labels = {}
    for name in LAYOUTS:
        path = write_release(name, folder)
        at.sidebar.text_input(key="checkpoint_options").input(OPTIONS.get(name, DEFAULT_OPTIONS))
        at.sidebar.text_input(key="checkpoint_path").input(str(path))
        at.run()
        assert not at.exception and not error_texts(at), (name, error_texts(at))
        (models,) = [m for m in at.sidebar.multiselect if m.label == "Models to compare"]
        labels[name] = models.value[-1]
        if OPTIONS.get(name, DEFAULT_OPTIONS):
            path.unlink()  # with options the sidebar keeps its own copy, saved with what was typed
    return at, labels


@pytest.mark.slow
def test_each_release_is_added_and_described(with_releases: Session) -> None:
    """Each layout is added under its file name and scheme, with an expander saying what it is."""
    at, labels = with_releases
    for name, label in labels.items():
        layout, scheme, backbone = LAYOUTS[name]
        assert label == f"{reference(name)['filename_hint'].removesuffix('.pth')} ({scheme})"
        (about,) = [e for e in at.sidebar.expander if e.label == f"About {label}"]
        text = "\n".join(t.value for t in about.text)
        assert f"layout: {layout}" in text and f"on backbone {backbone}" in text, text
        assert f"classes: {reference(name)['num_classes']}" in text and "GFLOPs" in text


@pytest.mark.slow
def test_models_page_costs_every_release(with_releases: Session) -> None:
    """The cost table covers release backbones: measured on the model itself, relative to TSN where our
    builder has the backbone (ResNets), not for S3D's Inception or C3D's VGG stack."""
    at, labels = with_releases
    assert not at.exception and not error_texts(at), error_texts(at)
    assert not [w.value for w in at.warning if "no cost figures" in w.value]
    table = at.dataframe[0].value.set_index("model")
    assert set(table.index) == set(labels.values())
    for name, label in labels.items():
        row = table.loc[label]
        assert row["backbone"] == LAYOUTS[name][2] and row["params_M"] > 0 and row["gflops"] > 0
        assert row["latency_ms"] > 0
        assert (row["backbone"].startswith("resnet")) == (row["flops_vs_tsn"] == row["flops_vs_tsn"])  # NaN


@pytest.mark.slow
@pytest.mark.parametrize("page", ["temporal.py", "gates.py", "attribution.py", "reports.py"])
def test_every_page_renders_with_the_releases(
    page: str, with_releases: Session
) -> None:
    """The analysis pages run on release models like on ours; gate analyses keep to gated models."""
    at, labels = with_releases
    if page == "attribution.py":  # gradients through full-size nets: two cheap ones, one method
        at.session_state["attr_models"] = [labels["tv_mc3_18_k400"], labels["mma_tsn_r50_k400_3f"]]
        at.session_state["attr_methods"] = ["saliency"]
    at.switch_page(f"app_pages/{page}").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not error_texts(at), error_texts(at)
    if page == "gates.py":  # none of the releases has gates: the page offers the demo gsm/gsf only
        (picker,) = [s for s in at.selectbox if s.label == "Gated model"] or [None]
        assert picker is None or not set(picker.options) & set(labels.values())
    if page == "attribution.py":
        assert at.dataframe, "no attribution table"
