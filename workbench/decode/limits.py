"""Bounds checked before anything is decoded or allocated; module constants so a caller may change them."""

from __future__ import annotations

import math

from workbench.decode.errors import cannot_decode

# 8192 x 8192 (67 Mpx) holds 8K UHD (7680 x 4320, 33 Mpx) with room; beyond it a "video" is a bomb or a lie.
MAX_FRAME_PIXELS = 8192 * 8192
MAX_FRAME_SIDE = 16384  # one side: a 16384 x 1 strip is not a video either
# Frame rates outside this range come from broken timescales (a 0 timescale reads as 1/512 fps).
MIN_FPS, MAX_FPS = 0.1, 10_000.0
# The uint8 frames one read may return: all 18000 frames of a 10-minute 1080p video would be 112 GB.
MAX_DECODE_BYTES = 4 * 2**30


def check_frame_size(name: str, height: int, width: int) -> None:
    """Refuse an unknown, empty or huge frame size before a frame is decoded."""
    if height <= 0 or width <= 0:
        raise cannot_decode(name, f"frame size unknown or over the {_limit()} limit")
    if height * width > MAX_FRAME_PIXELS or max(height, width) > MAX_FRAME_SIDE:
        raise cannot_decode(name, f"frames of {width}x{height} are over the {_limit()} limit")


def check_fps(name: str, fps: float | None) -> None:
    """Refuse a frame rate no real video has (a timescale of 0, a broken header)."""
    if fps is not None and not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
        raise cannot_decode(name, f"frame rate {fps:.3g} fps is not plausible (broken timescale)")


def check_decode_bytes(name: str, frames: int, height: int, width: int) -> None:
    """Refuse a read whose uint8 frames would not fit the memory bound."""
    size = frames * height * width * 3
    if size > MAX_DECODE_BYTES:
        need, limit = size / 2**30, MAX_DECODE_BYTES / 2**30
        raise cannot_decode(name, f"{frames} frames of {width}x{height} need {need:.1f} GiB, over the "
                                  f"{limit:.1f} GiB limit (read fewer frames or smaller)")


def _limit() -> str:
    side = math.isqrt(MAX_FRAME_PIXELS)
    return f"{side}x{side} pixel" if side * side == MAX_FRAME_PIXELS else f"{MAX_FRAME_PIXELS} pixel"
