"""Frame-order perturbations: seeded, pure functions from a clip length to a new frame order.

A perturbation never touches pixels: it returns an index array `order` (length T) and the
perturbed clip is `clip[:, order]`. So the same order can be applied to any model's sampled clip,
recorded in results, and replayed exactly.

Kendall-tau distance here is the normalised one: the fraction of frame pairs whose order is
swapped (0 = original order, 1 = reversed). The sweep draws permutations with an exact number of
inversions, uniformly among all permutations with that number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

PERTURBATIONS = ("original", "shuffle", "reverse", "freeze", "local_swap", "block_shuffle", "sweep")
# Perturbations that only reorder frames (every frame kept once): an order-blind model ignores them.
ORDER_ONLY = ("shuffle", "reverse", "local_swap", "block_shuffle", "sweep")
# Perturbations with a random draw: they get `permutations` repeats; the others have one.
RANDOM = ("shuffle", "freeze", "block_shuffle", "sweep")
DEFAULT_LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class FrameOrder:
    """One perturbed frame order of a clip: which perturbation, which repeat, which level."""

    perturbation: str
    repeat: int
    order: tuple[int, ...]
    level: float | None = None  # achieved Kendall-tau distance, for the sweep only

    @property
    def text(self) -> str:
        """The order as 'i,j,k' (how it is stored in results)."""
        return ",".join(str(i) for i in self.order)


def _check_frames(frames: int) -> None:
    if frames < 1:
        raise ValueError(f"a clip needs at least one frame, got {frames}")


def identity_order(frames: int) -> np.ndarray:
    """The original order 0..T-1."""
    _check_frames(frames)
    return np.arange(frames, dtype=np.int64)


def reverse_order(frames: int) -> np.ndarray:
    """The reversed order T-1..0."""
    return identity_order(frames)[::-1].copy()


def shuffle_order(frames: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation other than the identity (when T > 1)."""
    order = identity_order(frames)
    if frames < 2:
        return order
    while True:  # P(identity) = 1/T!, so this loops about once
        candidate = rng.permutation(frames)
        if not np.array_equal(candidate, order):
            return candidate.astype(np.int64)


def freeze_order(frames: int, rng: np.random.Generator) -> np.ndarray:
    """One random frame repeated T times: appearance kept, motion removed."""
    _check_frames(frames)
    return np.full(frames, int(rng.integers(frames)), dtype=np.int64)


def local_swap_order(frames: int) -> np.ndarray:
    """Adjacent pairs swapped (1,0,3,2,...); an odd last frame stays."""
    order = identity_order(frames)
    pairs = frames // 2 * 2
    order[:pairs] = order[:pairs].reshape(-1, 2)[:, ::-1].reshape(-1)
    return order


def block_shuffle_order(frames: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """Blocks of `block` frames (the last may be shorter) in a random non-identity block order."""
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    blocks = np.array_split(identity_order(frames), range(block, frames, block))
    chosen = shuffle_order(len(blocks), rng)
    return np.concatenate([blocks[i] for i in chosen]).astype(np.int64)


def inversions(order: Sequence[int] | np.ndarray) -> int:
    """Number of frame pairs (i < j) shown in swapped order (order[i] > order[j])."""
    values = np.asarray(order)
    return int(np.triu(values[:, None] > values[None, :], k=1).sum())


def kendall_distance(order: Sequence[int] | np.ndarray) -> float:
    """Normalised Kendall-tau distance from the identity: inversions / (T(T-1)/2), in [0, 1]."""
    frames = len(order)
    pairs = frames * (frames - 1) // 2
    return inversions(order) / pairs if pairs else 0.0


@lru_cache(maxsize=256)
def _lehmer_counts(frames: int, total: int) -> tuple[tuple[float, ...], ...]:
    """counts[i][s]: how many inversion vectors of positions i..T-1 sum to s (Mahonian numbers).

    Cached: a run draws thousands of orders of the same length at a handful of distances."""
    counts = [[0.0] * (total + 1) for _ in range(frames + 1)]
    counts[frames][0] = 1.0
    for i in range(frames - 1, -1, -1):
        room = frames - 1 - i  # position i can precede at most this many smaller later values
        for s in range(total + 1):
            counts[i][s] = sum(counts[i + 1][s - c] for c in range(min(room, s) + 1))
    return tuple(tuple(row) for row in counts)


def permutation_with_inversions(frames: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation with exactly `count` inversions, uniform among all such permutations."""
    _check_frames(frames)
    most = frames * (frames - 1) // 2
    if not 0 <= count <= most:
        raise ValueError(f"a {frames}-frame order has 0..{most} inversions, not {count}")
    counts = _lehmer_counts(frames, count)
    # Draw the inversion (Lehmer) vector position by position, weighted by completions.
    code, left = [], count
    for i in range(frames):
        room = frames - 1 - i
        options = np.arange(min(room, left) + 1)
        weights = np.array([counts[i + 1][left - c] for c in options])
        c = int(rng.choice(options, p=weights / weights.sum()))
        code.append(c)
        left -= c
    remaining = list(range(frames))
    return np.array([remaining.pop(c) for c in code], dtype=np.int64)


def permutation_at_distance(frames: int, distance: float, rng: np.random.Generator) -> np.ndarray:
    """A uniformly drawn permutation whose Kendall-tau distance is the nearest reachable to `distance`."""
    if not 0.0 <= distance <= 1.0:
        raise ValueError(f"distance must be in [0, 1], got {distance}")
    most = frames * (frames - 1) // 2
    return permutation_with_inversions(frames, int(round(distance * most)), rng)


def frame_orders(
    frames: int,
    perturbations: Sequence[str],
    permutations: int,
    rng: np.random.Generator,
    *,
    block: int = 2,
    levels: Sequence[float] = DEFAULT_LEVELS,
) -> list[FrameOrder]:
    """Every perturbed order of one clip: `permutations` repeats of the random ones, one of the rest."""
    unknown = [p for p in perturbations if p not in PERTURBATIONS]
    if unknown:
        raise ValueError(f"unknown perturbations {unknown}; known: {list(PERTURBATIONS)}")
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    orders: list[FrameOrder] = []
    # Fixed registry order, so results do not depend on how the user listed them.
    for name in PERTURBATIONS:
        if name not in perturbations:
            continue
        if name == "original":
            orders.append(FrameOrder(name, 0, tuple(identity_order(frames).tolist())))
        elif name == "reverse":
            orders.append(FrameOrder(name, 0, tuple(reverse_order(frames).tolist())))
        elif name == "local_swap":
            orders.append(FrameOrder(name, 0, tuple(local_swap_order(frames).tolist())))
        elif name == "sweep":
            for level in levels:
                most = frames * (frames - 1) // 2
                count = int(round(level * most))
                # The ends have one permutation each: drawing it again would only repeat rows.
                repeats = 1 if count in (0, most) else permutations
                for repeat in range(repeats):
                    order = permutation_with_inversions(frames, count, rng)
                    orders.append(FrameOrder(name, repeat, tuple(order.tolist()), kendall_distance(order)))
        else:
            for repeat in range(permutations):
                if name == "shuffle":
                    order = shuffle_order(frames, rng)
                elif name == "freeze":
                    order = freeze_order(frames, rng)
                else:
                    order = block_shuffle_order(frames, block, rng)
                orders.append(FrameOrder(name, repeat, tuple(order.tolist())))
    return orders


def apply_order(clip: torch.Tensor, order: Sequence[int] | np.ndarray, dim: int = 0) -> torch.Tensor:
    """The clip with its frames (along `dim`) in `order`."""
    index = torch.as_tensor(np.asarray(order, dtype=np.int64), device=clip.device)
    return clip.index_select(dim, index)


def stack_orders(clip: torch.Tensor, orders: Sequence[FrameOrder]) -> torch.Tensor:
    """All perturbed versions of one clip (T, ...) as a batch (len(orders), T, ...)."""
    index = torch.tensor([o.order for o in orders], dtype=torch.int64, device=clip.device)
    return clip[index]
