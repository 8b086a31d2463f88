"""Frame-order perturbations: exact orders, exact Kendall-tau distances, seeding, real clips."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from analysis.perturb import (
    PERTURBATIONS,
    apply_order,
    block_shuffle_order,
    frame_orders,
    freeze_order,
    inversions,
    kendall_distance,
    local_swap_order,
    permutation_at_distance,
    permutation_with_inversions,
    reverse_order,
    shuffle_order,
    stack_orders,
)
from workbench.demo import demo_probe_dir
from workbench.video import read_frames


def brute_inversions(order: list[int]) -> int:
    """Pairs in swapped order, counted the slow obvious way."""
    return sum(1 for i, j in itertools.combinations(range(len(order)), 2) if order[i] > order[j])


def test_fixed_orders_are_the_known_ones() -> None:
    assert reverse_order(5).tolist() == [4, 3, 2, 1, 0]
    assert local_swap_order(8).tolist() == [1, 0, 3, 2, 5, 4, 7, 6]
    assert local_swap_order(5).tolist() == [1, 0, 3, 2, 4]  # odd last frame stays
    assert kendall_distance(reverse_order(8)) == 1.0
    assert kendall_distance(np.arange(8)) == 0.0
    # one adjacent swap of 8 frames: 1 of 28 pairs; all four swaps: 4 of 28
    assert kendall_distance([1, 0, 2, 3, 4, 5, 6, 7]) == pytest.approx(1 / 28)
    assert kendall_distance(local_swap_order(8)) == pytest.approx(4 / 28)


def test_random_orders_are_permutations_of_the_right_shape() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        shuffled = shuffle_order(8, rng)
        assert sorted(shuffled.tolist()) == list(range(8))
        assert shuffled.tolist() != list(range(8))
        frozen = freeze_order(8, rng)
        assert len(set(frozen.tolist())) == 1 and 0 <= frozen[0] < 8
        blocks = block_shuffle_order(8, 3, rng).tolist()
        assert sorted(blocks) == list(range(8)) and blocks != list(range(8))
        # blocks of 3 (0-2, 3-5, 6-7) stay whole and in order inside
        starts = [i for i, v in enumerate(blocks) if v in (0, 3, 6)]
        pieces = [blocks[s : s + (2 if blocks[s] == 6 else 3)] for s in starts]
        assert sorted(map(tuple, pieces)) == [(0, 1, 2), (3, 4, 5), (6, 7)]


@pytest.mark.parametrize("frames", [2, 5, 8])
def test_permutation_with_inversions_hits_every_count_exactly(frames: int) -> None:
    rng = np.random.default_rng(frames)
    most = frames * (frames - 1) // 2
    for count in range(most + 1):
        order = permutation_with_inversions(frames, count, rng)
        assert sorted(order.tolist()) == list(range(frames))
        assert inversions(order) == brute_inversions(order.tolist()) == count
    assert permutation_with_inversions(frames, most, rng).tolist() == list(range(frames))[::-1]
    with pytest.raises(ValueError):
        permutation_with_inversions(frames, most + 1, rng)


def test_permutation_with_inversions_is_uniform() -> None:
    # 4 frames with 2 inversions: exactly 5 permutations (Mahonian numbers 1,3,5,6,5,3,1).
    rng = np.random.default_rng(0)
    draws = Counter(tuple(permutation_with_inversions(4, 2, rng).tolist()) for _ in range(5000))
    expected = {p for p in itertools.permutations(range(4)) if brute_inversions(list(p)) == 2}
    assert set(draws) == expected and len(expected) == 5
    assert all(800 < n < 1200 for n in draws.values()), draws  # 1000 each; 4 sigma is ~115


def test_permutation_at_distance_is_the_nearest_reachable() -> None:
    rng = np.random.default_rng(1)
    for distance in (0.0, 0.1, 0.5, 0.9, 1.0):
        order = permutation_at_distance(8, distance, rng)
        assert kendall_distance(order) == pytest.approx(round(distance * 28) / 28)


def test_frame_orders_are_seeded_and_complete() -> None:
    levels = (0.0, 0.5, 1.0)
    first = frame_orders(8, PERTURBATIONS, 3, np.random.default_rng(5), levels=levels)
    again = frame_orders(8, PERTURBATIONS, 3, np.random.default_rng(5), levels=levels)
    other = frame_orders(8, PERTURBATIONS, 3, np.random.default_rng(6), levels=levels)
    assert first == again and first != other
    counts = Counter(o.perturbation for o in first)
    # random ones 3 draws, fixed ones 1; sweep: ends once, the middle level 3 times
    assert counts == {"original": 1, "shuffle": 3, "reverse": 1, "freeze": 3, "local_swap": 1,
                      "block_shuffle": 3, "sweep": 1 + 3 + 1}
    assert first[0].perturbation == "original" and first[0].order == tuple(range(8))
    sweep = [o for o in first if o.perturbation == "sweep"]
    assert [o.level for o in sweep] == [0.0, 0.5, 0.5, 0.5, 1.0]
    # the user's listing order does not change the orders drawn
    assert frame_orders(8, ["shuffle", "original"], 2, np.random.default_rng(5)) == \
        frame_orders(8, ["original", "shuffle"], 2, np.random.default_rng(5))
    with pytest.raises(ValueError, match="unknown perturbations"):
        frame_orders(8, ["shuffel"], 2, np.random.default_rng(5))


def test_orders_applied_to_a_real_decoded_clip() -> None:
    video = next((demo_probe_dir() / "move_left").glob("*.mp4"))
    frames = read_frames(video, [0, 2, 4, 6, 8, 10, 12, 14])  # uint8 (8, 48, 48, 3)
    clip = frames.permute(0, 3, 1, 2).float()
    order = shuffle_order(8, np.random.default_rng(0))
    moved = apply_order(clip, order)
    for position, source in enumerate(order.tolist()):
        assert torch.equal(moved[position], clip[source])
    assert torch.equal(apply_order(clip, reverse_order(8)), clip.flip(0))
    orders = frame_orders(8, ["original", "reverse", "freeze"], 2, np.random.default_rng(0))
    batch = stack_orders(clip, orders)
    assert batch.shape == (4, 8, 3, 48, 48)
    assert torch.equal(batch[0], clip) and torch.equal(batch[1], clip.flip(0))
    # a frozen clip really is one frame: no motion left (the real clip has motion)
    assert (batch[2] == batch[2][:1]).all() and not (clip == clip[:1]).all()
