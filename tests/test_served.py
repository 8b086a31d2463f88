"""Served mode (the app open to other machines): every path box resolves only inside the data roots.

Outside them (an existing file, a missing one, `..` out of a root, a symlink out of a root) a box
shows one message, the same for all, so nothing can be learnt about the server's disk; a labels file
outside is never read; inside, everything works as locally. Without data roots the app refuses to run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from workbench import access
from workbench.demo import demo_checkpoints, demo_probe_dir
from workbench.probe import class_names

APP = str(Path(__file__).resolve().parents[1] / "app.py")
CLIP = "move_left/move_left_00000.mp4"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A data root with a clip, a checkpoint and a small dataset, and an outside folder with the same."""
    root, outside = tmp_path / "data", tmp_path / "outside"
    for folder in (root, outside):
        (folder / "set" / "move_left").mkdir(parents=True)
        shutil.copy(demo_probe_dir() / CLIP, folder / "clip.mp4")
        shutil.copy(demo_probe_dir() / CLIP, folder / "set" / CLIP)
        shutil.copy(demo_probe_dir() / "classes.json", folder / "set" / "classes.json")
        (folder / "set" / "labels.csv").write_text(f"path,label\n{CLIP},move_left\n")
        shutil.copy(demo_checkpoints()["tsn"], folder / "tsn.pt")
        (folder / "labels.txt").write_text("\n".join(class_names()) + "\n")  # the demo models' 14 classes
    (root / "link.mp4").symlink_to(outside / "clip.mp4")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv(access.MODE_VAR, "served")
    monkeypatch.setenv(access.ROOTS_VAR, str(root))
    yield {"root": root, "outside": outside}
    access.set_policy(access.LOCAL)  # this process goes on testing locally


def outside_paths(paths: dict[str, Path], name: str) -> list[str]:
    """Ways to name a file outside the roots: plainly, missing, through `..` and through symlinks."""
    root, outside = paths["root"], paths["outside"]
    return [str(outside / name), str(outside / "missing" / name), "/etc/passwd",
            f"{root}/../outside/{name}", str(root / "linkdir" / name)] + \
        ([str(root / "link.mp4")] if name == "clip.mp4" else [])


def messages(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_served_without_data_roots_refuses_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(access.MODE_VAR, "served")
    monkeypatch.delenv(access.ROOTS_VAR, raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    (error,) = messages(at)
    assert "no data roots" in error and access.ROOTS_VAR in error
    assert not at.sidebar.get("multiselect")  # nothing of the app was drawn


def test_every_path_box_answers_the_same_outside_the_roots(server: dict[str, Path]) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    at.sidebar.radio(key="clip_origin").set_value("Path").run()
    for path in outside_paths(server, "clip.mp4"):
        at.sidebar.text_input(key="video_path").input(path).run()
        assert messages(at) == [access.NOT_AVAILABLE], (path, messages(at))
    for path in outside_paths(server, "tsn.pt"):
        at.sidebar.text_input(key="checkpoint_path").input(path).run()
        assert messages(at)[-1] == access.NOT_AVAILABLE, (path, messages(at))
    # a labels file outside is not read (its 14 lines would fit this 14-class model)
    at.sidebar.text_input(key="checkpoint_options").input(f"classes={server['outside'] / 'labels.txt'}").run()
    at.sidebar.text_input(key="checkpoint_path").input(str(server["root"] / "tsn.pt")).run()
    assert messages(at)[-1].endswith(access.NOT_AVAILABLE), messages(at)
    at.switch_page("app_pages/reports.py").run()
    for path in outside_paths(server, "set"):
        at.text_input(key="reports_folder").input(path).run()
        assert access.NOT_AVAILABLE in messages(at), (path, messages(at))


def test_inside_the_roots_everything_works(server: dict[str, Path]) -> None:
    root = server["root"]
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.sidebar.radio(key="clip_origin").set_value("Path").run()
    at.sidebar.text_input(key="video_path").input(str(root / "clip.mp4")).run()
    assert not messages(at) and any("16 frames" in c.value for c in at.sidebar.caption)
    at.sidebar.text_input(key="checkpoint_options").input(f"classes={root / 'labels.txt'}").run()
    at.sidebar.text_input(key="checkpoint_path").input(str(root / "tsn.pt")).run()
    assert not messages(at), messages(at)  # added, with the class names of a labels file inside
    at.switch_page("app_pages/temporal.py").run()
    at.text_input(key="temporal_data").input(str(root / "set")).run()
    at.number_input(key="temporal_permutations").set_value(1).run()
    at.button(key="temporal_run").click().run()
    assert not at.exception and not messages(at), messages(at)


def test_a_dataset_inside_the_roots_cannot_reach_outside(server: dict[str, Path]) -> None:
    root, outside = server["root"], server["outside"]
    far = outside / "clip.mp4"
    (root / "set" / "labels.csv").write_text(f"path,label\n{CLIP},move_left\n{far},move_left\n")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app_pages/temporal.py").run()
    at.text_input(key="temporal_data").input(str(root / "set")).run()
    at.number_input(key="temporal_permutations").set_value(1).run()
    at.button(key="temporal_run").click().run()
    assert not at.exception and not messages(at)
    result = at.session_state["temporal_result"][1]
    reason = f"cannot decode {str(far)!r}: {access.NOT_AVAILABLE}"
    assert result.run["skipped"] == [{"video": str(far), "reason": reason}]


def test_a_configured_login_comes_before_everything(server: dict[str, Path]) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "id", "client_secret": "secret",
                          "server_metadata_url": "https://example.org/.well-known/openid-configuration"}
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.sidebar.get("multiselect")  # no page, no sidebar until logged in


def test_the_janitor_removes_only_the_folders_of_its_own_closed_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another server (or test run) sharing the upload root keeps its sessions' uploads; a session this
    server gave a folder to loses it once the runtime no longer knows it."""
    from app_pages import sessions

    monkeypatch.setenv(access.UPLOADS_VAR, str(tmp_path))
    monkeypatch.setattr(sessions, "_janitor", lambda: None)
    monkeypatch.setattr(sessions, "session_id", lambda: "ours-1")
    ours = sessions.session_uploads()
    (ours / "clip.mp4").write_bytes(b"x")
    foreign = access.upload_root() / "someone-elses"
    foreign.mkdir()
    monkeypatch.setattr(sessions, "_alive", lambda name: True)
    assert sessions.sweep() == [] and ours.is_dir()
    monkeypatch.setattr(sessions, "_alive", lambda name: False)
    assert "ours-1" in sessions.sweep()  # (with the AppTest sessions this process ran before)
    assert not ours.exists() and foreign.is_dir()  # never ours: kept although no session here knows it
