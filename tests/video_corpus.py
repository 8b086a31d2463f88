"""Test videos made at test time with the bundled ffmpeg: a known-answer corpus and a hostile one.

Every frame of the known-answer clips encodes its own index in eight coloured blocks (red = 1, blue = 0),
so a decoded frame says which frame it is, whatever the codec's loss, and a swapped channel order
reads as a different index. Reusable by any test: `build_corpus(folder)`, `build_hostile(folder)`, or the
fixtures `corpus`, `hostile` and the parametrised `decoder` (import `*_fixture` into a test module).
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from workbench.video import available_decoders

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
DECODERS = [pytest.param("decord", marks=pytest.mark.skipif("decord" not in available_decoders(),
                                                            reason="decord is not installed here")), "pyav"]
FRAMES = 40  # frames per known-answer clip: several GOPs of 10, 1.6 s at 25 fps
HEIGHT, WIDTH = 48, 64
ONE, ZERO = (230, 30, 30), (30, 30, 230)  # a bit's two colours: distinct in every channel but G
_GRID = (2, 4)  # rows, columns of bit blocks: 8 bits, indices 0..255


def index_frame(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A uint8 (H,W,3) RGB frame whose 2x4 blocks spell `index` in binary, most significant bit first."""
    rows, columns = _GRID
    frame = np.zeros((height, width, 3), np.uint8)
    for bit in range(rows * columns):
        row, column = divmod(bit, columns)
        on = (index >> (rows * columns - 1 - bit)) & 1
        top, left = row * height // rows, column * width // columns
        frame[top : (row + 1) * height // rows, left : (column + 1) * width // columns] = ONE if on else ZERO
    return frame


def index_frames(count: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Frames 0..count-1 as uint8 (T,H,W,3)."""
    return np.stack([index_frame(index, height, width) for index in range(count)])


def read_index(frame: np.ndarray) -> int:
    """The index a decoded upright frame spells; -1 when a block is neither colour (wrong channel order,
    garbage, a frame of another clip)."""
    frame = np.asarray(frame)
    rows, columns = _GRID
    height, width = frame.shape[:2]
    index = 0
    for bit in range(rows * columns):
        row, column = divmod(bit, columns)
        # the centre half of the block: away from chroma bleeding at block edges
        top, bottom = (4 * row + 1) * height // (4 * rows), (4 * row + 3) * height // (4 * rows)
        left, right = (4 * column + 1) * width // (4 * columns), (4 * column + 3) * width // (4 * columns)
        red, _, blue = frame[top:bottom, left:right].reshape(-1, 3).mean(axis=0)
        if red > 150 and blue < 100:
            index = 2 * index + 1
        elif blue > 150 and red < 100:
            index = 2 * index
        else:
            return -1
    return index


def ffmpeg(*arguments: str, stdin: bytes | None = None) -> bytes:
    """Run the bundled ffmpeg quietly; its stdout."""
    command = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *arguments]
    if stdin is not None:
        command.remove("-nostdin")
    return subprocess.run(command, input=stdin, capture_output=True, check=True).stdout


def encode(path: Path, frames: np.ndarray, codec: list[str], *, rate: int = 25, before: tuple = (),
           after: tuple = ()) -> Path:
    """Encode uint8 (T,H,W,3) RGB frames to `path`; `before` goes before the output options (filters)."""
    _, height, width, _ = frames.shape
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(rate), "-i", "-"]
    ffmpeg(*raw, *before, *codec, *after, str(path), stdin=np.ascontiguousarray(frames).tobytes())
    return path


def reference_frames(path: Path) -> np.ndarray:
    """Every frame (T,H,W,3) as the ffmpeg command line decodes it: autorotated, no frame dropped or
    duplicated (`-fps_mode passthrough`), rgb24 by swscale. The reference both back ends must match."""
    probe = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    raw = ffmpeg("-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo",
                 "-pix_fmt", "rgb24", "-")
    # the size after autorotation: one output frame, as a PNG header says it
    png = ffmpeg("-i", str(path), "-map", "0:v:0", "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-")
    width, height = struct.unpack(">II", png[16:24])
    assert raw, f"ffmpeg decoded nothing from {path}: {probe[-300:]}"
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


@dataclass(frozen=True)
class Clip:
    """One known-answer clip: its file name, encoder options and how it differs from plain."""

    name: str
    codec: tuple[str, ...]
    before: tuple[str, ...] = ()
    rotation: int = 0  # display matrix rotation, degrees counter-clockwise (ffmpeg's -display_rotation)
    mirrored: bool = False  # display matrix flips left-right first (-display_hflip: a selfie camera)
    height: int = HEIGHT
    width: int = WIDTH


H264 = ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10", "-bf", "2")
# Every container/codec the issue names; GOPs of 10 so seeks land on several keyframes.
CLIPS = {
    clip.name: clip
    for clip in [
        Clip("h264.mp4", H264),
        Clip("hevc.mp4", ("-c:v", "libx265", "-pix_fmt", "yuv420p",
                          "-x265-params", "log-level=error:keyint=10")),
        Clip("vp8.webm", ("-c:v", "libvpx", "-g", "10", "-b:v", "1M", "-deadline", "realtime")),
        Clip("vp9.webm", ("-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-g", "10", "-b:v", "0", "-crf", "30",
                          "-deadline", "realtime", "-cpu-used", "8")),
        Clip("mpeg4.avi", ("-c:v", "mpeg4", "-q:v", "2", "-g", "10", "-bf", "2")),
        Clip("mjpeg.avi", ("-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p")),
        # open GOP: non-IDR keyframes whose leading B-frames reference the previous GOP
        Clip("open_gop.mkv", ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "3", "-x264-params",
                              "keyint=10:min-keyint=10:open-gop=1:scenecut=0")),
        # variable frame rate: frame n at (n + n^2/40) / 25 s, intervals growing from 40 to 120 ms
        Clip("vfr.mp4", H264, before=("-vf", "setpts=(N+N*N/40)/(25*TB)", "-fps_mode", "passthrough")),
        Clip("rotate_90.mp4", H264, rotation=90),
        Clip("rotate_180.mp4", H264, rotation=180),
        Clip("rotate_270.mp4", H264, rotation=270),
        # containers beyond the list, where decord's seeks are not exact (PyAV decodes them)
        Clip("h264.ts", (*H264, "-f", "mpegts")),
        Clip("h264.flv", H264),
        Clip("wmv2.wmv", ("-c:v", "wmv2", "-q:v", "2")),
        Clip("mpeg2.mpg", ("-c:v", "mpeg2video", "-q:v", "2", "-bf", "2", "-g", "10")),
        Clip("theora.ogv", ("-c:v", "libtheora", "-q:v", "8")),
        Clip("h264.mov", H264),
        Clip("mirrored.mp4", H264, mirrored=True),
        Clip("rotate_90_mirrored.mp4", H264, rotation=90, mirrored=True),
        Clip("portrait.mp4", H264, height=WIDTH, width=HEIGHT),
    ]
}
FOLDER = "frames"  # a frame folder in the corpus, PNG frames img_00001.png ...


def build_clip(folder: Path, clip: Clip, frames: int = FRAMES) -> Path:
    """Encode one corpus clip into `folder`."""
    path = folder / clip.name
    pixels = index_frames(frames, clip.height, clip.width)
    if not clip.rotation and not clip.mirrored:
        return encode(path, pixels, list(clip.codec), before=clip.before)
    # the display matrix is set at remux time: the coded frames stay landscape, players turn them
    plain = encode(folder / f"unrotated_{clip.name}", pixels, list(clip.codec), before=clip.before)
    matrix = ["-display_rotation", str(clip.rotation)] + (["-display_hflip"] if clip.mirrored else [])
    ffmpeg(*matrix, "-i", str(plain), "-c", "copy", str(path))
    plain.unlink()
    return path


def build_frame_folder(folder: Path, frames: int = FRAMES) -> Path:
    """A TSN-style frame folder of lossless PNGs."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(index_frames(frames)):
        Image.fromarray(frame).save(folder / f"img_{index + 1:05d}.png")
    return folder


def build_corpus(folder: Path) -> dict[str, Path]:
    """Every known-answer clip plus a frame folder, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus = {name: build_clip(folder, clip) for name, clip in CLIPS.items()}
    corpus[FOLDER] = build_frame_folder(folder / FOLDER)
    return corpus


# --- hostile files ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    """A file the decoding layer must refuse (`error`: VideoError matching it) or use in part (`warning`:
    VideoWarning matching it), never escaping with another exception."""

    path: Path
    error: str | None = None
    warning: str | None = None


def _patch_avi_size(data: bytes, width: int, height: int, sof: bool = False) -> bytes:
    """An AVI whose headers (and, for MJPEG, every JPEG's SOF marker) claim another frame size."""
    out = bytearray(data)
    struct.pack_into("<II", out, out.find(b"avih") + 8 + 32, width, height)  # dwWidth, dwHeight
    struct.pack_into("<ii", out, out.find(b"strf") + 8 + 4, width, height)  # BITMAPINFOHEADER
    at = out.find(b"\xff\xc0")
    while sof and at >= 0:
        struct.pack_into(">HH", out, at + 5, height, width)
        at = out.find(b"\xff\xc0", at + 1)
    return bytes(out)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds one row of data: a decompression bomb's shape."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


def _zero_mdhd_timescale(data: bytes) -> bytes:
    """An mp4 whose video track says its timescale is 0."""
    out = bytearray(data)
    at = out.find(b"mdhd")
    version = out[at + 4]
    struct.pack_into(">I", out, at + 4 + 4 + (16 if version == 1 else 8), 0)
    return bytes(out)


TEXT = "not a video or corrupt|a text file"
# file name -> what the decoding layer must do: error= (VideoError) or warning= (VideoWarning), a regex
HOSTILE_EXPECTED: dict[str, dict[str, str]] = {
    "notes.txt": {"error": TEXT},
    "text.mp4": {"error": TEXT},
    "empty.mp4": {"error": "file is empty"},
    "random.mp4": {"error": "not a video or corrupt"},
    "moov_at_end_half.mp4": {"error": "not a video or corrupt"},
    "no_moov.mp4": {"error": "not a video or corrupt"},
    "faststart_cut.mp4": {"warning": r"\d+ of the 60 frames"},
    "faststart_tail.mp4": {"warning": r"\d+ of the 60 frames"},
    "truncated.avi": {"warning": r"\d+ of the 250 frames"},
    "zero_timescale.mp4": {"error": "timescale|frame rate"},
    "huge_raw.avi": {"error": "over the 8192x8192 pixel limit"},
    "huge_mjpeg.avi": {"error": "over the 8192x8192 pixel limit"},
    "zeroed_frames.mp4": {"error": "no frame decodes"},
    "audio_only.mp4": {"error": "no video stream"},
    "loop_a.mp4": {"error": "symlink loop"},
    "dangling.mp4": {"error": "symlink to a missing file"},
    "missing.mp4": {"error": "no such file"},
    "folder.mp4": {"error": "folder has no numbered image frames"},
    "fifo.mp4": {"error": "not a regular file"},
    "bomb_frames": {"error": "'img_00002.png' is over the pixel limit"},
    "over_limit_frames": {"error": "9000x9000 are over the 8192x8192 pixel limit"},
    "mixed_frames": {"warning": r"1 of 6 frames differ in size .* img_00005.png \(32x24\)"},
    "not_image_frames": {"error": "'img_00002.png' is not a readable image"},
}


def _png_bytes(frame: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="png")
    return out.getvalue()


def build_hostile(folder: Path) -> dict[str, Hostile]:
    """Odd and broken inputs, each with what the decoding layer must do with it."""
    folder.mkdir(parents=True, exist_ok=True)
    h264 = list(H264)
    normal = encode(folder / "normal.mp4", index_frames(FRAMES), h264).read_bytes()
    faststart = encode(folder / "faststart.mp4", index_frames(60), h264, after=("-movflags", "+faststart"))
    fast = faststart.read_bytes()
    avi = encode(folder / "long.avi", index_frames(250), ["-c:v", "mpeg4", "-q:v", "2"]).read_bytes()
    raw = encode(folder / "raw.avi", index_frames(5), ["-c:v", "rawvideo", "-pix_fmt", "bgr24"]).read_bytes()
    mjpeg = encode(folder / "mjpeg.avi", index_frames(5), ["-c:v", "mjpeg"]).read_bytes()
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(folder / "audio_only.mp4"))
    moov = normal.find(b"moov")
    mdat = fast.find(b"mdat")
    zeroed = fast[: mdat + 8] + bytes(len(fast) - mdat - 8)
    files = {
        "notes.txt": b"hello\nthis is a text file, not a video\n" * 3,
        "text.mp4": b"hello\nthis is a text file, not a video\n" * 3,
        "empty.mp4": b"",
        "random.mp4": np.random.default_rng(0).bytes(4000),
        "moov_at_end_half.mp4": normal[: len(normal) // 2],
        "no_moov.mp4": normal[:moov - 4],
        "faststart_cut.mp4": fast[: len(fast) * 6 // 10],
        "faststart_tail.mp4": fast[:-500],
        "truncated.avi": avi[: len(avi) * 35 // 100],
        "zero_timescale.mp4": _zero_mdhd_timescale(normal),
        "huge_raw.avi": _patch_avi_size(raw, 16000, 16000),
        "huge_mjpeg.avi": _patch_avi_size(mjpeg, 16000, 16000, sof=True),
        "zeroed_frames.mp4": zeroed,
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "loop_a.mp4").symlink_to(folder / "loop_b.mp4")
    (folder / "loop_b.mp4").symlink_to(folder / "loop_a.mp4")
    (folder / "dangling.mp4").symlink_to(folder / "gone.mp4")
    (folder / "folder.mp4").mkdir()
    os.mkfifo(folder / "fifo.mp4")
    # frame folders with one odd frame each: (folder, frames, odd frame's name, its bytes)
    for name, frames, odd, data in [
        ("bomb_frames", 3, "img_00002.png", _png_claiming(20000, 20000)),
        ("over_limit_frames", 3, "img_00003.png", _png_claiming(9000, 9000)),  # under PIL's bomb limit
        ("mixed_frames", 6, "img_00005.png", _png_bytes(index_frame(4, HEIGHT // 2, WIDTH // 2))),
        ("not_image_frames", 3, "img_00002.png", b"not a png"),
    ]:
        build_frame_folder(folder / name, frames)
        (folder / name / odd).write_bytes(data)
    cases = {name: Hostile(folder / name, **expected) for name, expected in HOSTILE_EXPECTED.items()}
    for helper in ("normal.mp4", "faststart.mp4", "long.avi", "raw.avi", "mjpeg.avi"):
        (folder / helper).unlink()
    return cases


# --- fixtures (import corpus_fixture ... into a test module) ---------------------------------------


@pytest.fixture(scope="session", name="corpus")
def corpus_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The known-answer corpus, built once per session (~1.5 s)."""
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session", name="hostile")
def hostile_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Hostile]:
    """The hostile corpus, built once per session."""
    return build_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(params=DECODERS, name="decoder")
def decoder_fixture(request: pytest.FixtureRequest) -> str:
    """Each back end installed here, by name."""
    return request.param
