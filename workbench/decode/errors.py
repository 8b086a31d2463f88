"""The errors and warnings of video input (VideoError and VideoWarning live with every other user error in
workbench/errors.py), and the internal signals between the decoding modules."""

from __future__ import annotations

from ..errors import VideoError, VideoWarning

__all__ = ["BackendFailed", "PartialDecode", "VideoError", "VideoWarning", "cannot_decode"]


class PartialDecode(Exception):
    """Decoding stopped before a wanted frame: only the first `readable` frames decode (internal)."""

    def __init__(self, readable: int) -> None:
        super().__init__(f"only the first {readable} frames decode")
        self.readable = readable


def cannot_decode(name: str, problem: str) -> VideoError:
    """The one-sentence error for a file: `cannot decode 'name': problem`."""
    return VideoError(f"cannot decode {name!r}: {problem}")


class BackendFailed(Exception):
    """This back end cannot decode the file, though the probe read it: another back end may (internal)."""
