"""One table per concept: a scheme, a perturbation and an attribution method registered from this file
alone show up everywhere that lists them: the CLI's help, the zoo table, the app's choices and a report."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from analysis.attribution import METHODS, Method, attribute, register_method
from analysis.attribution.methods import Output
from analysis.perturb import PERTURBATIONS, Perturbation, fixed, register_perturbation
from analysis.report import render_html
from analysis.report_sections import build_report
from analysis.temporal import ExperimentConfig, run_experiment
from workbench import SCHEMES, build_model, save_model
from workbench.cli import build_parser, main
from workbench.errors import OptionError
from workbench.models.complexity import zoo_table
from workbench.models.frames import frames_of
from workbench.models.schemes import Scheme, register_scheme
from workbench.models.temporal import TemporalOp, shift_time
from workbench.probe import class_kinds, class_names, mirror_table

APP = str(Path(__file__).resolve().parents[1] / "app.py")


class HalfShift(TemporalOp):
    """Toy operator: the first half of the channels takes frame t-1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.half = channels // 2

    def forward(self, x: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        t = frames_of(x, frames)
        y = x.view(x.shape[0] // t, t, *x.shape[1:])
        return torch.cat((shift_time(y[:, :, : self.half], 1), y[:, :, self.half :]), dim=2).view(x.shape)


@dataclass(frozen=True)
class BrightnessOptions:
    """The toy method's one setting."""

    power: float = 1.0


def brightness(model: torch.nn.Module, inputs: torch.Tensor, target: int, options: BrightnessOptions,
               ) -> Output:
    """Toy attribution: how far each input value is from the mean colour (no model involved)."""
    return Output(raw=inputs.detach().abs() ** options.power)


TOY_SCHEME = Scheme("halfshift", "Toy half shift", "2d", "half of the channels take the previous frame",
                    "zero FLOPs", "this test",
                    lambda position, o: ((1 if position < 0.5 else 0, "copy", "x"),),
                    operator=lambda channels, o: HalfShift(channels), operator_name="halfshift")
TOY_PERTURBATION = Perturbation("rotate_one", "rotate by one",
                                "every frame moves one place later, the last first",
                                fixed(lambda frames: np.roll(np.arange(frames), 1)), order_only=True)
TOY_METHOD = Method("brightness", "Brightness (toy)", "none", BrightnessOptions, brightness,
                    description="distance of each value from the mean colour")


@pytest.fixture(scope="module", autouse=True)
def toys() -> Iterator[None]:
    """The three rows, registered for this module's tests and removed afterwards."""
    register_scheme(TOY_SCHEME)
    register_perturbation(TOY_PERTURBATION)
    register_method(TOY_METHOD)
    yield
    SCHEMES.pop(TOY_SCHEME.name)
    PERTURBATIONS.pop(TOY_PERTURBATION.name)
    METHODS.pop(TOY_METHOD.name)


def help_text(*command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    return out.getvalue()


def test_the_toys_are_in_the_command_line_help() -> None:
    assert "halfshift" in help_text("train") and "halfshift" in help_text("zoo")
    assert "rotate_one" in help_text("temporal-test")
    assert "brightness" in help_text("attribute")


def test_the_toy_scheme_builds_runs_and_is_in_the_zoo_table() -> None:
    model = build_model("halfshift", backbone="resnet-tiny", num_classes=3, frames=4, input_size=32)
    assert [name.rsplit(".", 1)[-1] for name, _ in model.temporal_ops()] == ["halfshift"] * 4
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        assert (model(x) - model(x.flip(1))).abs().max() > 1e-4  # it reads frame order
    table = zoo_table("resnet-tiny", 4, 32, 3, latency=False)
    row = table.set_index("scheme").loc["halfshift"]
    assert row["flops_vs_tsn"] == pytest.approx(1.0)  # a shift costs no FLOPs


def test_the_toy_method_has_typed_options() -> None:
    x = torch.randn(1, 4, 3, 16, 16)
    model = build_model("tsn", backbone="resnet-tiny", num_classes=3, frames=4, input_size=16).eval()
    squared = attribute(model, x, "brightness", target=0, power=2.0)
    np.testing.assert_allclose(squared.map, (x[0] ** 2).sum(1).numpy(), rtol=1e-6)
    with pytest.raises(OptionError, match="unknown option 'pwr' for brightness; its options: power"):
        attribute(model, x, "brightness", target=0, pwr=2.0)


def test_the_toys_are_in_the_app_choices() -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert "Toy half shift (halfshift)" in at.multiselect(key="models_schemes").options
    at.switch_page("app_pages/temporal.py").run()
    assert "rotate one" in at.multiselect(key="temporal_perturbations").options
    at.switch_page("app_pages/attribution.py").run()
    assert "Brightness (toy)" in at.multiselect(key="attr_methods").options


def test_the_toys_are_in_a_report(tiny_probe: Path, tmp_path: Path) -> None:
    model = build_model("halfshift", backbone="resnet-tiny", num_classes=len(class_names()), frames=4,
                        input_size=32, class_names=class_names(), mirror_of=mirror_table(),
                        class_kinds=class_kinds())
    checkpoint = save_model(model.eval(), tmp_path / "toy.pt")
    config = ExperimentConfig(perturbations=("rotate_one",), permutations=1, bootstrap=50)
    run_experiment({"toy": model.eval()}, tiny_probe, config, tmp_path / "temporal",
                   checkpoints={"toy": checkpoint})
    video = tiny_probe / "move_left" / "move_left_00000.mp4"
    assert main(["attribute", "--model", str(checkpoint), str(video), "--methods", "brightness",
                 "--method-option", "brightness.power=2", "--out", str(tmp_path / "attr")]) == 0
    report = build_report([tmp_path / "temporal", tmp_path / "attr"])
    assert report.models.set_index("model").loc["toy", "scheme"] == "halfshift"
    temporal, attribution = report.sections
    accuracy = next(f.figure for f in temporal.figures if f.name == "accuracy")
    assert {"original", "rotate by one"} <= {x for trace in accuracy.data for x in trace.x}
    names = {f.name for f in attribution.figures}
    assert {"brightness_grid", "brightness_profile", "brightness_curves"} <= names
    html = render_html(report)
    assert "rotate by one" in html and "halfshift" in html and "brightness" in html
