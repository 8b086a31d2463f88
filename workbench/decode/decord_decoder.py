"""The decord back end: the fast path where its wheel exists (Linux x86_64, Windows x86_64).

It decodes only: the PyAV probe has already read the frame count, size, fps and rotation, so both back ends
agree on what an index means. decord applies the display matrix itself and scales in FFmpeg when given a
size (4K: 0.24 s / 131 MB instead of 2.6 s / 2.0 GB at full size).
"""

from __future__ import annotations

import decord
import numpy as np
from decord._ffi.base import DECORDError, DECORDLimitReachedError

from workbench.decode.errors import BackendFailed
from workbench.decode.pyav_decoder import PyAVVideo

# decord's FFmpeg writes every concealed macroblock of a damaged file to stderr ("[mpeg4 @ 0x..] Error at
# MB: 8"): the workbench says what it read itself (VideoWarning), one line, as PyAV's silent default does.
decord.logging.set_level(decord.logging.QUIET)

# Containers where decord's random access gave the frames a full decode gives (tests/test_decoders.py):
# its seeks went 2-14 frames astray in FLV and ASF (wmv) with B-frames or coarse indexes, and in MPEG-TS
# even its sequential frames were other frames.
EXACT_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "ogg"})
# decord signals bad input with RuntimeError, DECORDError (not a RuntimeError: truncated faststart
# mp4), IndexError (frame count larger than the decodable frames) or a failed assert (0 frames).
_DECODE_ERRORS = (RuntimeError, DECORDError, DECORDLimitReachedError, IndexError, AssertionError)


def decord_is_exact(probe: PyAVVideo) -> bool:
    """Whether decord gives frame i as index i here: a container it seeks in exactly, closed GOPs (it counts
    frames from the keyframe it seeks to; x265's CRA and mpeg4 AVI with B-frames have leading frames),
    no mirror in the display matrix (decord turns a mirrored video by 180 degrees instead)."""
    return probe.container_format in EXACT_CONTAINERS and probe.closed_gops and not probe.mirrored


class DecordVideo:
    """A probed video decoded by decord; BackendFailed where decord cannot read what the probe could."""

    decoder = "decord"

    def __init__(self, probe: PyAVVideo) -> None:
        self.probe = probe
        self.name, self.num_frames, self.fps = probe.name, probe.num_frames, probe.fps
        self.height, self.width, self.rotation = probe.height, probe.width, probe.rotation
        self.mirrored = probe.mirrored
        self.header_frames = probe.header_frames

    def decode(self, indices: list[int], height: int, width: int) -> np.ndarray:
        """Frames `indices` (sorted, unique) as upright uint8 (N,H,W,3) RGB at (height, width)."""
        if not decord_is_exact(self.probe):
            raise BackendFailed("decord would return other frames than the indices asked for")
        full = (height, width) == (self.height, self.width)
        try:
            # The reader is opened at the wanted size: one reader per call, freed when the call ends.
            reader = decord.VideoReader(self.probe.source.open(), width=-1 if full else width,
                                        height=-1 if full else height)
            if len(reader) != self.probe.packets:
                # decord indexes other frames than the packets the probe counted: not the same index
                raise BackendFailed(f"decord counts {len(reader)} frames, the probe {self.probe.packets}")
            return _batch(reader, indices, height, width)
        except _DECODE_ERRORS as exc:
            raise BackendFailed(str(exc)) from None

    def close(self) -> None:
        """Release the probe's container."""
        self.probe.close()


def _batch(reader: decord.VideoReader, indices: list[int], height: int, width: int) -> np.ndarray:
    try:
        return reader.get_batch(indices).asnumpy()
    except DECORDError:
        if reader[indices[0]].shape[-1] == 3:
            raise  # a real decoding failure
        return np.stack([_unpad(reader[index].asnumpy(), height, width) for index in indices])


def _unpad(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Undo a decord bug: at some narrow widths (16, 24, 48, 72 px ...) ffmpeg pads each RGB row
    and decord reports the padded row as extra channels, e.g. (48, 48, 4); `get_batch` then fails.
    Single frames keep the padded rows: drop the padding."""
    rows = frame.reshape(height, -1)
    if rows.shape[1] < 3 * width:
        raise DECORDError(f"decoded frame {tuple(frame.shape)} is smaller than {height}x{width} RGB")
    return rows[:, : 3 * width].reshape(height, width, 3)
