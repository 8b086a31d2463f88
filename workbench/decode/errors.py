"""The errors and warnings of video input, on the bottom floor so every decoding module can raise them."""

from __future__ import annotations


class VideoError(Exception):
    """An input that cannot be read as a video; the message names the file and the problem."""


class VideoWarning(UserWarning):
    """A video that is used, but not as a whole or not as it is (truncated, resized frames)."""


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
