"""requirements.txt resolves, from wheels alone, on every platform we promise: Linux x86_64 and aarch64,
macOS arm64 and Windows x86_64 (uv's resolver evaluates another platform's markers; pip cannot)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REQUIREMENTS = Path(__file__).parent.parent / "requirements.txt"
# target triple -> whether decord (the fast path) is installed there; PyAV is everywhere
PLATFORMS = {
    "x86_64-manylinux_2_28": True,
    "aarch64-manylinux_2_28": False,
    "aarch64-apple-darwin": False,  # torch 2.13 has macosx_14_0_arm64 wheels: MACOSX_DEPLOYMENT_TARGET=14.0
    "x86_64-pc-windows-msvc": True,
}


def _pins(lock: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, flags=re.MULTILINE))


@pytest.mark.slow  # ~1 s a platform with uv's cache warm; a cold cache fetches the index
@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_requirements_resolve_from_wheels(platform: str, tmp_path: Path) -> None:
    from uv import find_uv_bin  # pinned in requirements.txt under "# tests"

    lock = tmp_path / "lock.txt"
    command = [find_uv_bin(), "pip", "compile", str(REQUIREMENTS), "--python-platform", platform,
               "--python-version", "3.11", "--only-binary", ":all:", "--quiet", "--no-header",
               "-o", str(lock)]
    env = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": "14.0"}
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"requirements.txt does not resolve for {platform}:\n{run.stderr[-3000:]}"
    pins = _pins(lock.read_text())
    assert pins["torch"] == "2.13.0" and "av" in pins
    assert ("decord" in pins) == PLATFORMS[platform]
