"""The tuned C allocator: big freed blocks are reused without fresh page faults, and given back on request.

Each case runs in a fresh interpreter (the tuning is process-wide), with glibc's defaults (what
`import workbench` leaves alone) and with the opt-in `WORKBENCH_MALLOC=keep`, side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.allocator import _libc

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(_libc() is None, reason="the tuning applies to glibc's malloc only")

# page faults of a ResNet-18 forward at batch 8 x 8x112 (activations up to 51 MiB, over glibc's mmap
# threshold), after a warm-up; then a 256 MiB block held, freed and handed back
PROBE = """
import json, resource, torch, workbench as wb
from workbench.allocator import release_free_memory
from workbench.models.memory import resident_bytes
model = wb.build_model("tsn", backbone="resnet18", num_classes=10, frames=8, input_size=112).eval()
clip = torch.randn(8, 8, 3, 112, 112)
with torch.inference_mode():
    model(clip)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    model(clip)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
big = torch.ones(2**26)
holding = resident_bytes()
del big
after_free = resident_bytes()
release_free_memory()
print(json.dumps({"faults": faults, "holding": holding, "after_free": after_free,
                  "released": resident_bytes()}))
"""


def probe(malloc: str) -> dict:
    env = {**os.environ, "WORKBENCH_MALLOC": malloc}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_forward_reuses_freed_blocks_instead_of_faulting_in_fresh_pages() -> None:
    system, tuned = probe(""), probe("keep")
    # measured: 55.5 k faults per forward with glibc's defaults (each big block mapped afresh), 7.9 k tuned
    assert system["faults"] > 3 * tuned["faults"], (system, tuned)


def test_freed_memory_stays_until_released() -> None:
    tuned = probe("keep")
    mib = 2**20
    assert tuned["after_free"] > tuned["holding"] - 64 * mib  # the 256 MiB block is kept for reuse
    assert tuned["released"] < tuned["holding"] - 192 * mib  # release_free_memory hands it back
    system = probe("")
    assert system["after_free"] < system["holding"] - 192 * mib  # glibc's default unmaps it at once
