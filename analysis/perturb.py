"""Frame-order perturbations: seeded, pure functions from a clip length to a new frame order.

A perturbation never touches pixels: it returns an index array `order` (length T) and the
perturbed clip is `clip[:, order]`. So the same order can be applied to any model's sampled clip,
recorded in results, and replayed exactly.

Kendall-tau distance here is the normalised one: the fraction of frame pairs whose order is
swapped (0 = original order, 1 = reversed). The sweep draws permutations with an exact number of
inversions, uniformly among all permutations with that number.

`PERTURBATIONS` is the table: one row per perturbation with its name, title, description, whether
it only reorders frames (an order-blind model ignores those), whether it is drawn at random (then
it gets `permutations` repeats), and the function giving its orders for one clip. The CLI's help,
the app's choices, the figures and the reports all read it; a new perturbation is one
`register_perturbation(Perturbation(...))`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

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


# --- the table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderSettings:
    """What the orders of one clip depend on besides its length and the random generator."""

    permutations: int = 5  # repeats of each random perturbation
    block: int = 2  # block_shuffle block length
    levels: tuple[float, ...] = DEFAULT_LEVELS  # sweep Kendall-tau distances


# (frames, rng, settings) -> (order, level) per repeat; level is the achieved distance (sweep) or None
OrdersFn = Callable[[int, np.random.Generator, OrderSettings], list[tuple[np.ndarray, float | None]]]


@dataclass(frozen=True)
class Perturbation:
    """One frame-order perturbation, as the table lists it."""

    name: str
    title: str  # short, for axes and legends
    description: str  # one line, for help texts
    orders: OrdersFn
    order_only: bool  # every frame kept once: an order-blind model gives the same answer
    random: bool = False  # drawn at random (repeated `permutations` times)
    extra: dict[str, str] = field(default_factory=dict)  # anything a view may show (units, notes)


def fixed(order: Callable[[int], np.ndarray]) -> OrdersFn:
    """The orders of a deterministic perturbation: one order."""
    return lambda frames, rng, settings: [(order(frames), None)]


def drawn(order: Callable[[int, np.random.Generator, OrderSettings], np.ndarray]) -> OrdersFn:
    """The orders of a random perturbation: `settings.permutations` draws."""
    return lambda frames, rng, settings: [(order(frames, rng, settings), None)
                                          for _ in range(settings.permutations)]


def _sweep_orders(frames: int, rng: np.random.Generator, settings: OrderSettings) -> list:
    orders = []
    most = frames * (frames - 1) // 2
    for level in settings.levels:
        count = int(round(level * most))
        # The ends have one permutation each: drawing it again would only repeat rows.
        for _ in range(1 if count in (0, most) else settings.permutations):
            order = permutation_with_inversions(frames, count, rng)
            orders.append((order, kendall_distance(order)))
    return orders


PERTURBATIONS: dict[str, Perturbation] = {}


def register_perturbation(perturbation: Perturbation) -> Perturbation:
    """Add (or replace) a row; experiments list rows in table order."""
    PERTURBATIONS[perturbation.name] = perturbation
    return perturbation


def order_only_names() -> tuple[str, ...]:
    """Perturbations that only reorder frames (every frame kept once)."""
    return tuple(name for name, p in PERTURBATIONS.items() if p.order_only)


def perturbation_title(name: str) -> str:
    """The short title of a perturbation (its name when it is not in the table)."""
    row = PERTURBATIONS.get(name)
    return row.title if row is not None else name


for _row in (
    Perturbation("original", "original", "the clip as the model samples it", fixed(identity_order), False),
    Perturbation("shuffle", "shuffle", "frames in a random order",
                 drawn(lambda frames, rng, s: shuffle_order(frames, rng)), True, random=True),
    Perturbation("reverse", "reverse", "played backwards", fixed(reverse_order), True),
    Perturbation("freeze", "freeze (one frame)", "one frame repeated: appearance without motion",
                 drawn(lambda frames, rng, s: freeze_order(frames, rng)), False, random=True),
    Perturbation("local_swap", "swap neighbours", "neighbouring frames swapped in pairs",
                 fixed(local_swap_order), True),
    Perturbation("block_shuffle", "shuffle blocks", "blocks of frames in a random order",
                 drawn(lambda frames, rng, s: block_shuffle_order(frames, s.block, rng)), True, random=True),
    Perturbation("sweep", "sweep", "random orders at set Kendall-tau distances from the original (0 to 1)",
                 _sweep_orders, True, random=True),
):
    register_perturbation(_row)


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
    settings = OrderSettings(permutations, block, tuple(levels))
    orders: list[FrameOrder] = []
    # Fixed table order, so results do not depend on how the user listed them.
    for name, row in PERTURBATIONS.items():
        if name not in perturbations:
            continue
        repeats: dict[float | None, int] = {}  # a repeat counts the draws at the same level
        for order, level in row.orders(frames, rng, settings):
            repeat = repeats[level] = repeats.get(level, -1) + 1
            orders.append(FrameOrder(name, repeat, tuple(np.asarray(order).tolist()), level))
    return orders


def apply_order(clip: torch.Tensor, order: Sequence[int] | np.ndarray, dim: int = 0) -> torch.Tensor:
    """The clip with its frames (along `dim`) in `order`."""
    index = torch.as_tensor(np.asarray(order, dtype=np.int64), device=clip.device)
    return clip.index_select(dim, index)


def stack_orders(clip: torch.Tensor, orders: Sequence[FrameOrder]) -> torch.Tensor:
    """All perturbed versions of one clip (T, ...) as a batch (len(orders), T, ...)."""
    index = torch.tensor([o.order for o in orders], dtype=torch.int64, device=clip.device)
    return clip[index]
