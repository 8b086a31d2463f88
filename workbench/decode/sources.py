"""Resolve what the caller passed (path, bytes, file object) into a `Source`, refusing what is no file."""

from __future__ import annotations

import errno
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from workbench.access import NOT_AVAILABLE, current_policy
from workbench.decode.errors import cannot_decode

# A video path, a frame-folder path, raw bytes or a binary file-like object (BytesIO, UploadedFile).
VideoSource = str | os.PathLike | bytes | IO[bytes]

_STAT_PROBLEMS = {
    errno.ELOOP: "symlink loop",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOTDIR: "no such file",
}


@dataclass
class Source:
    """A resolved input: a video file, an in-memory video, or a folder of frame images."""

    name: str  # what the caller passed, for messages: never a path we made up
    path: Path | None = None
    data: bytes | None = None
    is_folder: bool = False

    def open(self) -> str | io.BytesIO:
        """A fresh handle a decoder can read from the start: the path, or a new BytesIO."""
        return io.BytesIO(self.data) if self.data is not None else str(self.path)


def resolve(video: VideoSource) -> Source:
    """The input as a `Source`; missing, empty, looping or non-regular files raise VideoError."""
    if isinstance(video, (bytes, bytearray, memoryview)):
        if not len(video):
            raise cannot_decode("<bytes>", "file is empty")
        return Source(name="<bytes>", data=bytes(video))
    if hasattr(video, "read"):
        name = str(getattr(video, "name", None) or "<in-memory video>")
        if hasattr(video, "seek"):
            video.seek(0)  # an upload may have been read already: decode it from the start
        data = video.read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"expected a binary file object, {name!r} gives {type(data).__name__}")
        if not data:
            raise cannot_decode(name, "file is empty")
        return Source(name=name, data=bytes(data))
    if not isinstance(video, (str, os.PathLike)):
        raise TypeError(f"expected a path, bytes or a binary file object, not {type(video).__name__}")
    name, path = str(video), Path(video)
    if not current_policy().allows(path):  # served: before anything looks at it, the same answer for all
        raise cannot_decode(name, NOT_AVAILABLE)
    try:
        info = path.stat()
    except OSError as exc:
        problem = _STAT_PROBLEMS.get(exc.errno or 0)
        if problem is None and exc.errno == errno.ENOENT:
            problem = "symlink to a missing file" if path.is_symlink() else "no such file"
        raise cannot_decode(name, problem or "cannot be opened") from None
    except ValueError:  # an embedded NUL byte
        raise cannot_decode(name, "not a valid file name") from None
    if stat.S_ISDIR(info.st_mode):
        return Source(name=name, path=path, is_folder=True)
    if not stat.S_ISREG(info.st_mode):
        # a FIFO or a device would block or never end: refuse before a decoder opens it
        raise cannot_decode(name, "not a regular file (a device, pipe or socket)")
    if info.st_size == 0:
        raise cannot_decode(name, "file is empty")
    if not os.access(path, os.R_OK):
        raise cannot_decode(name, "permission denied")
    return Source(name=name, path=path)
