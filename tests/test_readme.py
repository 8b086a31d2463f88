"""The README's Python examples run as written, so the README cannot drift from the code.

Each block runs in its own Python process from a scratch folder (a block may register a scheme or
write files), with the repository on the path as for a user in a checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def examples() -> list[str]:
    """Every ```python block of the README, in order."""
    return BLOCK.findall(README.read_text())


def test_the_readme_has_python_examples() -> None:
    assert len(examples()) >= 3


@pytest.mark.parametrize("number", range(len(examples())))
def test_readme_example_runs(number: int, tmp_path: Path) -> None:
    script = tmp_path / f"readme_block_{number + 1}.py"
    script.write_text(examples()[number])
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"README python block {number + 1} failed:\n{done.stderr[-3000:]}"
