"""Every odd file through every front door: `predict`, `gates`, `attribute`, `temporal-test` (a CSV and a
class-folder dataset) and the app's path and upload boxes. Zero tracebacks: a bad video is one `error:`
line naming it and exit 2 (a message in the app), a partly decodable one is used with a warning, and in
a dataset a bad video is skipped and listed with its reason while the run finishes with the rest."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.video_corpus import HOSTILE_EXPECTED, Hostile, hostile_fixture  # noqa: F401 - the fixture
from workbench.cli import main
from workbench.demo import demo_checkpoints, demo_probe_dir

APP = str(Path(__file__).resolve().parents[1] / "app.py")
BAD = sorted(name for name, expected in HOSTILE_EXPECTED.items() if "error" in expected)
PARTIAL = sorted(name for name, expected in HOSTILE_EXPECTED.items() if "warning" in expected)
GOOD = ["move_left/move_left_00000.mp4", "move_right/move_right_00001.mp4"]


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    """Exit code and stderr of one CLI command run in this process."""
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


def commands(video: Path, out: Path) -> dict[str, list[str]]:
    models = demo_checkpoints()
    return {
        "predict": ["predict", str(models["tsn"]), str(video)],
        "gates": ["gates", str(models["gsm"]), str(video), "--out", str(out / "gates")],
        "attribute": ["attribute", "--model", str(models["tsn"]), str(video), "--methods", "saliency",
                      "--curve-steps", "2", "--out", str(out / "attr")],
    }


@pytest.mark.parametrize("name", BAD)
def test_a_bad_video_is_one_error_line_in_every_command(
    hostile: dict[str, Hostile], name: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    case = hostile[name]
    for command, argv in commands(case.path, tmp_path).items():
        code, err = run(capsys, *argv)
        assert code == 2, (command, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (command, err)
        assert name in lines[0], (command, err)  # names the file


@pytest.mark.parametrize("name", PARTIAL)
def test_a_partly_decodable_video_is_used_with_a_warning(
    hostile: dict[str, Hostile], name: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    case = hostile[name]
    for command, argv in commands(case.path, tmp_path).items():
        code, err = run(capsys, *argv)
        assert code == 0, (command, err)
        assert "Traceback" not in err and "warning: " in err and name in err, (command, err)


def _dataset_with_hostiles(hostile: dict[str, Hostile], root: Path, layout: str) -> tuple[Path, list[str]]:
    """Two good probe clips plus hostile files, as a labels.csv dataset (every file, by absolute path) or
    as class folders (the files a folder dataset lists: video files and frame folders, linked in), and
    the names of the bad ones it holds."""
    probe = demo_probe_dir()
    root.mkdir(parents=True)
    shutil.copy(probe / "classes.json", root / "classes.json")
    rows = []
    for relative in GOOD:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(probe / relative, root / relative)
        rows.append((relative, relative.split("/")[0]))
    if layout == "csv":
        rows += [(str(case.path), "move_up") for case in hostile.values()]  # a CSV may point anywhere
        with open(root / "labels.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([("path", "label"), *rows])
        return root, BAD
    listed = [name for name, case in hostile.items() if case.path.is_dir() or
              (case.path.is_file() and case.path.suffix in (".mp4", ".avi"))]
    (root / "move_up").mkdir(exist_ok=True)
    for name in listed:
        target = hostile[name].path
        (root / "move_up" / name).symlink_to(target, target_is_directory=target.is_dir())
    return root, [name for name in BAD if name in listed]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["csv", "folders"])
def test_temporal_test_skips_and_lists_bad_videos_and_finishes(
    hostile: dict[str, Hostile], layout: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data, bad = _dataset_with_hostiles(hostile, tmp_path / "data", layout)
    assert len(bad) >= 10
    out = tmp_path / "run"
    tsn = str(demo_checkpoints()["tsn"])
    code, err = run(capsys, "temporal-test", "--model", tsn, "--data", str(data), "--out", str(out),
                    "--perturbations", "reverse", "--permutations", "1", "--bootstrap", "50", "--quiet")
    assert code == 0 and "Traceback" not in err, err
    run_json = json.loads((out / "run.json").read_text())
    skipped = {Path(s["video"]).name: s["reason"] for s in run_json["skipped"]}
    assert sorted(skipped) == sorted(bad)
    assert all("cannot decode" in reason for reason in skipped.values()), skipped
    assert run_json["rows"] > 0 and run_json["status"] == "complete"  # the rest was scored
    code, err = run(capsys, "temporal-test", "--model", tsn, "--data", str(data), "--out",
                    str(tmp_path / "strict"), "--perturbations", "reverse", "--quiet", "--strict")
    assert code == 2 and err.strip().startswith("error: cannot decode") and "--strict" in err


def test_attribute_and_evaluate_on_a_dataset_skip_bad_videos(
    hostile: dict[str, Hostile], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(demo_probe_dir() / "classes.json", data / "classes.json")
    rows = [("path", "label")]
    for relative in GOOD:
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(demo_probe_dir() / relative, data / relative)
        rows.append((relative, relative.split("/")[0]))
    rows += [(str(hostile[name].path), "move_up") for name in ("notes.txt", "random.mp4", "bomb_frames")]
    with open(data / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    tsn = str(demo_checkpoints()["tsn"])
    code, err = run(capsys, "attribute", "--model", tsn, "--data", str(data), "--methods", "saliency",
                    "--curve-steps", "2", "--bootstrap", "50", "--out", str(tmp_path / "attr"))
    assert code == 0 and "Traceback" not in err, err
    skipped = json.loads((tmp_path / "attr" / "run.json").read_text())["skipped"]
    assert sorted(Path(s["video"]).name for s in skipped) == ["bomb_frames", "notes.txt", "random.mp4"]
    capsys.readouterr()
    assert main(["evaluate", tsn, "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "skipped 3 video(s)" in out and "notes.txt" in out


@pytest.fixture(scope="module")
def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


@pytest.mark.parametrize("name", [*BAD, *PARTIAL])
def test_the_app_path_box_shows_a_message_never_an_exception(
    app: AppTest, hostile: dict[str, Hostile], name: str
) -> None:
    app.sidebar.radio(key="clip_origin").set_value("Path").run()
    app.sidebar.text_input(key="video_path").input(str(hostile[name].path)).run()
    assert not app.exception, app.exception
    shown = [e.value for e in app.error] + [w.value for w in app.warning]
    assert any(name in text for text in shown), shown


UPLOADABLE = [n for n in [*BAD, *PARTIAL] if Path(n).suffix in (".mp4", ".avi") and n not in
              ("loop_a.mp4", "dangling.mp4", "missing.mp4", "folder.mp4", "fifo.mp4")]


@pytest.mark.parametrize("name", UPLOADABLE)
def test_the_app_upload_box_names_the_upload_not_a_server_path(
    app: AppTest, hostile: dict[str, Hostile], name: str
) -> None:
    app.sidebar.radio(key="clip_origin").set_value("Upload").run()
    upload = (name, hostile[name].path.read_bytes(), "video/mp4")
    app.sidebar.file_uploader(key="video_upload").set_value(upload)
    app.run()
    assert not app.exception, app.exception
    shown = [e.value for e in app.error] + [w.value for w in app.warning]
    assert any(name in text for text in shown), shown
    assert not any("gate-shift-workbench-uploads" in text or "/tmp" in text for text in shown), shown
