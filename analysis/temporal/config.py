"""What a frame-order experiment is: its settings, its result, and the orders of each video."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.errors import ExperimentError

from ..perturb import DEFAULT_LEVELS, PERTURBATIONS, FrameOrder, frame_orders

__all__ = ["NO_LEVEL", "ExperimentConfig", "ExperimentError", "ExperimentResult", "video_orders"]

NO_LEVEL = -1.0  # `level` of rows outside the sweep (NaN would drop out of pandas group-bys)


@dataclass
class ExperimentConfig:
    """What to perturb and how; everything that changes results is in here (and in run.json)."""

    perturbations: tuple[str, ...] = ()  # empty: every perturbation of the table
    permutations: int = 5  # repeats of each random perturbation per video
    seed: int = 0
    block: int = 2  # block_shuffle block length in frames
    levels: tuple[float, ...] = DEFAULT_LEVELS  # sweep Kendall-tau distances
    batch_size: int = 64
    # Videos per part file, the unit of resumption. Batches do not cross chunks, so small chunks
    # leave many part-filled batches (measured: 8 videos per chunk cost ~15% more forward time).
    chunk_videos: int = 32
    bootstrap: int = 2000

    def __post_init__(self) -> None:
        wanted = tuple(self.perturbations) or tuple(PERTURBATIONS)
        unknown = [p for p in wanted if p not in PERTURBATIONS]
        if unknown:
            raise ExperimentError(f"unknown perturbations {unknown}; known: {', '.join(PERTURBATIONS)}")
        # The original order is always run: flips and KL are measured against it.
        self.perturbations = tuple(p for p in PERTURBATIONS if p in wanted or p == "original")
        self.levels = tuple(float(level) for level in self.levels)
        if self.permutations < 1 or self.batch_size < 1 or self.chunk_videos < 1 or self.bootstrap < 1:
            raise ExperimentError("permutations, batch_size, chunk_videos and bootstrap must be >= 1")
        if self.block < 1:
            raise ExperimentError(f"block must be >= 1, got {self.block}")
        if any(not 0.0 <= level <= 1.0 for level in self.levels):
            raise ExperimentError(f"sweep levels must be in [0, 1], got {list(self.levels)}")

    def key(self) -> dict[str, Any]:
        """Every field: chunking defines the part files and batching can change float rounding, so a
        resumed run must use the same values to be identical to an uninterrupted one."""
        data = asdict(self)
        data["perturbations"] = list(self.perturbations)
        data["levels"] = list(self.levels)
        return data


@dataclass
class ExperimentResult:
    """A finished run: the per-observation table and what is computed from it."""

    results: pd.DataFrame
    summary: pd.DataFrame
    class_sensitivity: pd.DataFrame
    comparisons: pd.DataFrame
    run: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None


def video_orders(name: str, frames: int, config: ExperimentConfig) -> list[FrameOrder]:
    """The perturbed orders of one video: seeded by the run seed, the video's name and T."""
    rng = np.random.default_rng([config.seed, zlib.crc32(name.encode()), frames])
    return frame_orders(frames, config.perturbations, config.permutations, rng,
                        block=config.block, levels=config.levels)
