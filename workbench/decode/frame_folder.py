"""Folders of frame images (TSN `img_00001.jpg`, Something-v1 `00001.jpg`) as a video."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from workbench.decode import limits
from workbench.decode.errors import VideoWarning, cannot_decode
from workbench.decode.sources import Source

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
_FRAME_NUMBER = re.compile(r"^(.*?)(\d+)$")
# PIL's own bomb check fires inside Image.open, before our limit can: make it an error we catch.
_BOMB = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def frame_files(name: str, folder: Path) -> list[Path]:
    """Images of a frame folder in numeric order (`img_00001.jpg`, `00001.jpg`, ...)."""
    series: dict[str, list[tuple[int, Path]]] = {}
    try:
        entries = list(folder.iterdir())
    except OSError:
        raise cannot_decode(name, "folder cannot be listed") from None
    for path in entries:
        match = _FRAME_NUMBER.match(path.stem)
        if path.suffix.lower() in IMAGE_EXTENSIONS and match and not path.name.startswith("."):
            series.setdefault(match.group(1), []).append((int(match.group(2)), path))
    if not series:
        raise cannot_decode(name, "folder has no numbered image frames")
    if len(series) > 1:
        # TSN-style folders can hold img_*, flow_x_* and flow_y_* side by side: RGB is img_*.
        if "img_" not in series:
            raise cannot_decode(name, f"folder mixes frame series {sorted(series)}")
        series = {"img_": series["img_"]}
    (numbered,) = series.values()
    return [path for _, path in sorted(numbered)]


class FrameFolder:
    """An opened frame folder: frame count and the first frame's size (read from its header only)."""

    decoder = "frames"
    fps = None
    rotation = 0
    mirrored = False

    def __init__(self, source: Source) -> None:
        assert source.path is not None
        self.name = source.name
        self.paths = frame_files(source.name, source.path)
        self.num_frames = self.header_frames = len(self.paths)
        # Every header now (~50 us each): a bomb, a non-image or a mixed size is known before decoding.
        sizes = []
        for index in range(self.num_frames):
            with self._image(index) as image:
                sizes.append(image.size)
        self.width, self.height = sizes[0]
        odd = [(path, size) for path, size in zip(self.paths, sizes) if size != sizes[0]]
        self.notes: list[str] = []  # what was warned, for callers that show it (video_info)
        if odd:
            (path, (width, height)) = odd[0]
            self.notes.append(f"{self.name!r}: {len(odd)} of {self.num_frames} frames differ in size from "
                              f"the first ({self.width}x{self.height}), e.g. {path.name} ({width}x{height}): "
                              "resized to it")
            warnings.warn(self.notes[-1], VideoWarning, stacklevel=4)

    def _image(self, index: int) -> Image.Image:
        """Frame `index` opened (header read, pixels not yet), its claimed size within the limits."""
        path = self.paths[index]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(path)
        except _BOMB:
            raise cannot_decode(self.name, f"frame {path.name!r} is over the pixel limit") from None
        except (OSError, ValueError, SyntaxError):
            raise cannot_decode(self.name, f"frame {path.name!r} is not a readable image") from None
        width, height = image.size
        try:
            limits.check_frame_size(self.name, height, width)
        except Exception:
            image.close()
            raise
        return image

    def decode(self, indices: list[int], height: int, width: int) -> np.ndarray:
        """Frames `indices` as uint8 (N,H,W,3) RGB at (height, width), each resized to it if need be."""
        frames = np.empty((len(indices), height, width, 3), np.uint8)
        for slot, index in enumerate(indices):
            with self._image(index) as image:
                frames[slot] = self._pixels(image, index, height, width)
        return frames

    def _pixels(self, image: Image.Image, index: int, height: int, width: int) -> np.ndarray:
        try:
            if image.size != (width, height):
                image.draft("RGB", (width, height))  # JPEG: decode at a reduced scale
                return np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR))
            return np.asarray(image.convert("RGB"))
        except (OSError, ValueError, SyntaxError):
            problem = f"frame {self.paths[index].name!r} is not a readable image"
            raise cannot_decode(self.name, problem) from None

    def close(self) -> None:
        """Nothing stays open between frames."""
