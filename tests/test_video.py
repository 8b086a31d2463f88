"""Tests for workbench.video: decoding real encoded videos (each back end), sampling, preprocessing."""

from __future__ import annotations

import functools
import io
import subprocess
import warnings
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from tests.video_corpus import decoder_fixture  # noqa: F401  (each installed back end)
from workbench import video
from workbench.models.spec import ModelSpec
from workbench.video import VideoError, load_clip, load_clips, preprocess, read_frames, sample_indices

HAVE_DECORD = "decord" in video.available_decoders()
needs_decord = pytest.mark.skipif(not HAVE_DECORD, reason="decord is not installed here")

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]
CONTAINERS = {  # suffix -> encoder arguments
    ".mp4": H264,
    ".mkv": H264,
    ".avi": ["-c:v", "mpeg4", "-q:v", "2"],
    ".webm": ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-deadline", "realtime"],
}


def grey_level(index: int) -> int:
    """Brightness of marked frame `index` (distinct, well inside the video range)."""
    return 20 + 10 * index


def marked_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Frames (T,H,W,3) uint8: grey level per frame and a pure red top-left block."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    for index in range(count):
        frames[index] = grey_level(index)
        frames[index, :16, :16] = (255, 0, 0)
    return frames


def encode(path: Path, frames: np.ndarray, codec: list[str] = H264, extra: tuple = ()) -> Path:
    """Encode RGB frames to `path` with the ffmpeg binary of imageio-ffmpeg."""
    _, height, width, _ = frames.shape
    command = [
        FFMPEG, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{width}x{height}", "-r", "25", "-i", "-", *codec, *extra, str(path),
    ]  # fmt: skip
    subprocess.run(command, input=frames.tobytes(), check=True)
    return path


@functools.cache
def encoders() -> str:
    """ffmpeg's encoder list."""
    command = [FFMPEG, "-hide_banner", "-encoders"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def decoded_index(frame: torch.Tensor) -> int:
    """Which marked frame this decoded frame is, from its brightness (away from the red block)."""
    return round((float(frame[24:, 24:].float().mean()) - 20) / 10)


@pytest.fixture(scope="module")
def clip_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return encode(tmp_path_factory.mktemp("videos") / "clip.mp4", marked_frames(20))


def spec_for(**kwargs) -> ModelSpec:
    return ModelSpec(scheme="tsn", backbone="tiny", num_classes=2, **kwargs)


# --- sampling -------------------------------------------------------------------------------


def test_segment_eval_is_tsn_test_sampler() -> None:
    # TSN/TSM _get_test_indices: int(tick / 2 + tick * i), tick = num_frames / segments
    assert sample_indices(20, 8).tolist() == [1, 3, 6, 8, 11, 13, 16, 18]
    assert sample_indices(16, 8).tolist() == [1, 3, 5, 7, 9, 11, 13, 15]


def test_segment_train_one_random_frame_per_segment() -> None:
    rng = np.random.default_rng(0)
    draws = np.stack([sample_indices(20, 8, train=True, rng=rng) for _ in range(200)])
    edges = np.floor(np.arange(9) * 2.5).astype(int)
    assert (draws >= edges[:-1]).all() and (draws < edges[1:]).all()
    assert len({tuple(d) for d in draws}) > 50  # random, not fixed
    again = sample_indices(20, 8, train=True, rng=np.random.default_rng(0))
    assert again.tolist() == draws[0].tolist()


@pytest.mark.parametrize("train", [False, True])
def test_short_video_repeats_indices_in_order(train: bool) -> None:
    indices = sample_indices(5, 8, train=train, rng=np.random.default_rng(1))
    assert len(indices) == 8 and indices.min() >= 0 and indices.max() <= 4
    assert (np.diff(indices) >= 0).all() and len(set(indices.tolist())) < 8
    if not train:
        assert indices.tolist() == [0, 0, 1, 2, 2, 3, 4, 4]


def test_dense_sampling() -> None:
    assert sample_indices(20, 4, mode="dense", dense_stride=2).tolist() == [
        6,
        8,
        10,
        12,
    ]
    starts = {int(sample_indices(20, 4, "dense", True, np.random.default_rng(s))[0]) for s in range(50)}
    assert starts == set(range(14))  # every start 0..13 possible, span 7 fits
    assert sample_indices(5, 4, mode="dense").tolist() == [
        0,
        2,
        4,
        4,
    ]  # clamped, order kept


def test_sampling_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        sample_indices(20, 8, mode="uniform")
    with pytest.raises(ValueError):
        sample_indices(0, 8)


# --- decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", list(CONTAINERS))
def test_sampled_indices_decode_to_the_right_frames(tmp_path: Path, suffix: str, decoder: str) -> None:
    codec = CONTAINERS[suffix]
    if f" {codec[1]} " not in encoders():
        pytest.fail(f"the pinned imageio-ffmpeg has no {codec[1]} encoder")
    path = encode(tmp_path / f"clip{suffix}", marked_frames(20), codec)
    info = video.video_info(path, decoder=decoder)
    expected = {"num_frames": 20, "height": 48, "width": 64, "fps": 25.0, "rotation": 0, "mirrored": False,
                "decoder": decoder, "warnings": []}
    assert info == expected
    frames = read_frames(path, [0, 5, 19, 5, 2], decoder=decoder)
    assert frames.dtype == torch.uint8 and frames.shape == (5, 48, 64, 3)
    assert [decoded_index(f) for f in frames] == [0, 5, 19, 5, 2]
    red = frames[:, 4:12, 4:12].float().mean(dim=(1, 2))  # RGB order: the block is red
    assert (red[:, 0] > 200).all() and (red[:, 1:] < 60).all()


def test_read_all_frames_and_str_path(clip_mp4: Path, decoder: str) -> None:
    frames = read_frames(str(clip_mp4), decoder=decoder)
    assert [decoded_index(f) for f in frames] == list(range(20))


def test_bytesio_and_upload_equal_path(clip_mp4: Path) -> None:
    data = clip_mp4.read_bytes()
    upload = io.BytesIO(data)
    upload.name = "upload.mp4"  # like Streamlit's UploadedFile (a BytesIO with a name)
    upload.read(100)  # a position other than 0 must not matter
    by_path = read_frames(clip_mp4, [3, 7])
    assert torch.equal(read_frames(upload, [3, 7]), by_path)
    assert torch.equal(read_frames(io.BytesIO(data), [3, 7]), by_path)
    assert torch.equal(read_frames(data, [3, 7]), by_path)
    spec = spec_for(frames=4, input_size=32)
    assert torch.equal(load_clip(upload, spec), load_clip(clip_mp4, spec))


def test_max_side_decodes_at_reduced_size(tmp_path: Path, decoder: str) -> None:
    path = encode(tmp_path / "large.mp4", marked_frames(3, height=360, width=640))
    assert read_frames(path, [0], max_side=100, decoder=decoder).shape == (1, 56, 100, 3)
    assert read_frames(path, [0], max_side=1000, decoder=decoder).shape == (1, 360, 640, 3)
    small = read_frames(path, [2], max_side=64, decoder=decoder)
    assert small.shape == (1, 36, 64, 3) and decoded_index(small[0]) == 2
    assert video.video_info(path, decoder=decoder)["width"] == 640
    clip = load_clip(path, spec_for(frames=3, input_size=32, resize=40), decoder=decoder)
    assert clip.shape == (1, 3, 3, 32, 32)


@needs_decord
def test_decord_decodes_at_the_reduced_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # load_clip asks decord itself for the reduced size (short side about 2 x resize_to): no full-size frame
    from workbench.decode import decord_decoder

    path = encode(tmp_path / "large.mp4", marked_frames(3, height=360, width=640))
    sizes = []
    original = decord_decoder.decord.VideoReader

    def recording_reader(uri, **kwargs):
        sizes.append((kwargs.get("height", -1), kwargs.get("width", -1)))
        return original(uri, **kwargs)

    monkeypatch.setattr(decord_decoder.decord, "VideoReader", recording_reader)
    clip = load_clip(path, spec_for(frames=3, input_size=32, resize=40), decoder="decord")
    assert clip.shape == (1, 3, 3, 32, 32)
    assert sizes == [(80, 143)]  # max_side = ceil(2 * 40 * 640 / 360)


def ffmpeg_decode(path: Path, height: int, width: int) -> torch.Tensor:
    """All frames (T,H,W,3) as ffmpeg itself decodes them to RGB: the reference for decord."""
    command = [FFMPEG, "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(-1, height, width, 3)


@pytest.mark.parametrize(("height", "width"), [(48, 48), (24, 16), (48, 72), (22, 30)])
def test_narrow_widths_decode_exactly(tmp_path: Path, height: int, width: int, decoder: str) -> None:
    # decord 0.6 takes ffmpeg's row padding for extra channels at some widths, e.g. (48, 48, 4)
    # for the 48 px probe clips, and its get_batch fails there.
    path = encode(tmp_path / "narrow.mp4", marked_frames(6, height, width))
    reference = ffmpeg_decode(path, height, width)
    assert torch.equal(read_frames(path, decoder=decoder), reference)
    assert torch.equal(read_frames(path, [4, 1, 1], decoder=decoder), reference[[4, 1, 1]])
    assert load_clip(path, spec_for(frames=4, input_size=16), decoder=decoder).shape == (1, 4, 3, 16, 16)


def test_reduced_size_at_a_narrow_width(clip_mp4: Path, decoder: str) -> None:
    frames = read_frames(clip_mp4, [3, 11], max_side=48, decoder=decoder)  # 64x48 -> 48x36
    assert frames.shape == (2, 36, 48, 3)
    assert [decoded_index(f) for f in frames] == [3, 11]


def test_max_side_odd_sizes(clip_mp4: Path, decoder: str) -> None:
    assert read_frames(clip_mp4, [1], max_side=30, decoder=decoder).shape == (1, 22, 30, 3)


@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory: pytest.TempPathFactory, clip_mp4: Path) -> dict[str, Path]:
    # more in tests/video_corpus.py's hostile corpus (tests/test_decoders.py)
    folder = tmp_path_factory.mktemp("bad")
    normal = clip_mp4.read_bytes()
    files = {
        "empty": b"",
        "random": np.random.default_rng(0).bytes(4000),
        "half": normal[: len(normal) // 2],  # moov at the end: cut off
    }
    paths = {name: folder / f"{name}.mp4" for name in files}
    for name, data in files.items():
        paths[name].write_bytes(data)
    paths["missing"] = folder / "missing.mp4"
    return paths


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("missing", "no such file"),
        ("empty", "file is empty"),
        ("random", "not a video or corrupt"),
        ("half", "not a video or corrupt"),
    ],
)
def test_bad_input_raises_video_error(bad_videos: dict[str, Path], name: str, problem: str,
                                      decoder: str) -> None:
    path = bad_videos[name]
    with pytest.raises(VideoError, match=f"cannot decode '.*{name}.mp4': {problem}"):
        read_frames(path, decoder=decoder)
    with pytest.raises(VideoError, match=f"{name}.mp4"):
        load_clip(path, spec_for(frames=4, input_size=32), decoder=decoder)
    if path.exists():
        with pytest.raises(VideoError, match="upload.mp4"):
            upload = io.BytesIO(path.read_bytes())
            upload.name = "upload.mp4"
            read_frames(upload, decoder=decoder)


def test_index_out_of_range(clip_mp4: Path, decoder: str) -> None:
    with pytest.raises(IndexError, match="20 frames"):
        read_frames(clip_mp4, [0, 20], decoder=decoder)


def test_short_video_warns_and_repeats(tmp_path: Path) -> None:
    path = encode(tmp_path / "short.mp4", marked_frames(5))
    with pytest.warns(UserWarning, match=r"short\.mp4.* 5 frames.* 8"):
        clip = load_clip(path, spec_for(frames=8, input_size=32))
    assert clip.shape == (1, 8, 3, 32, 32)
    assert torch.equal(clip[0, 0], clip[0, 1])  # indices [0, 0, 1, 2, 2, 3, 4, 4]
    assert not torch.equal(clip[0, 1], clip[0, 2])


def test_load_clip_samples_centres_of_segments(clip_mp4: Path) -> None:
    spec = spec_for(frames=4, input_size=48, mean=(0, 0, 0), std=(1, 1, 1), value_scale=255.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 20 frames >= 4: no warning
        clip = load_clip(clip_mp4, spec)
    # indices [2, 7, 12, 17]; the crop is the centre 48x48, its right part is plain grey
    levels = clip[0, :, :, 24:, 24:].mean(dim=(1, 2, 3))
    assert [round((float(v) - 20) / 10) for v in levels] == [2, 7, 12, 17]
    train = load_clip(clip_mp4, spec, train=True, rng=np.random.default_rng(0))
    assert train.shape == clip.shape


def test_load_clips_equals_load_clip_for_every_spec(tmp_path: Path) -> None:
    # 240x320: the specs decode at different reduced sizes (and frame counts), yet each clip must be
    # exactly what load_clip gives for its spec alone
    path = encode(tmp_path / "big.mp4", marked_frames(20, height=240, width=320))
    specs = [spec_for(frames=4, input_size=32), spec_for(frames=8, input_size=32),
             spec_for(frames=8, input_size=64, resize=80),
             spec_for(frames=3, input_size=48, channel_order="BGR")]
    clips = load_clips(path, specs)
    opened = video._open(path)
    assert len({video._decode_side(opened, spec) for spec in specs}) == 3
    opened.close()
    for spec, clip in zip(specs, clips):
        assert torch.equal(clip, load_clip(path, spec)[0]), spec


# --- preprocessing --------------------------------------------------------------------------


def constant_frames(colour: tuple[int, int, int], count: int = 2) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.uint8).expand(count, 60, 80, 3).contiguous()


def test_preprocess_rgb_unit_scale_imagenet() -> None:
    spec = spec_for(input_size=32, resize=40)
    out = preprocess(constant_frames((200, 100, 50)), spec)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 32, 32)
    expected = [(c / 255 - m) / s for c, m, s in zip((200, 100, 50), spec.mean, spec.std)]
    assert torch.allclose(out, torch.tensor(expected).view(1, 3, 1, 1).expand_as(out), atol=1e-5)


def test_preprocess_bgr_255_scale() -> None:
    spec = spec_for(
        input_size=32,
        channel_order="BGR",
        value_scale=255.0,
        mean=(104, 117, 128),
        std=(1,),
    )
    out = preprocess(constant_frames((200, 100, 50)), spec)
    expected = torch.tensor([50 - 104, 100 - 117, 200 - 128], dtype=torch.float32)
    assert torch.allclose(out, expected.view(1, 3, 1, 1).expand_as(out), atol=1e-4)


def test_preprocess_centre_crop_like_torchvision() -> None:
    columns = torch.arange(64, dtype=torch.uint8).view(1, 1, 64, 1).expand(1, 48, 64, 3)
    spec = spec_for(input_size=48, mean=(0, 0, 0), std=(1, 1, 1), value_scale=255.0)
    out = preprocess(columns.contiguous(), spec)  # short side already 48: crop only
    assert out.shape == (1, 3, 48, 48)
    assert out[0, 0, 0].tolist() == list(range(8, 56))
    resized = preprocess(columns.contiguous(), spec_for(input_size=20, resize=24))
    assert resized.shape == (1, 3, 20, 20)  # 48x64 -> 24x32 -> centre 20x20


def test_preprocess_rejects_float_frames() -> None:
    with pytest.raises(ValueError, match="uint8"):
        preprocess(torch.zeros(2, 8, 8, 3), spec_for(input_size=8))


# --- frame folders --------------------------------------------------------------------------


@pytest.fixture
def frame_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(marked_frames(12)):
        Image.fromarray(frame).save(folder / f"img_{index + 1}.png")  # unpadded: sort numerically
        Image.fromarray(frame[..., :1].repeat(3, -1)).save(folder / f"flow_x_{index + 1}.png")
    (folder / "notes.txt").write_text("not a frame")
    return folder


def test_frame_folder(frame_folder: Path) -> None:
    assert video.video_info(frame_folder) == {
        "warnings": [],
        "num_frames": 12,
        "height": 48,
        "width": 64,
        "fps": None,
        "rotation": 0,
        "mirrored": False,
        "decoder": "frames",
    }
    frames = read_frames(frame_folder, [0, 9, 11, 1])
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == torch.uint8
    assert [decoded_index(f) for f in frames] == [0, 9, 11, 1]
    assert torch.equal(frames[0], torch.from_numpy(marked_frames(1)[0]))  # lossless PNG
    assert read_frames(frame_folder, [3], max_side=32).shape == (1, 24, 32, 3)
    clip = load_clip(frame_folder, spec_for(frames=4, input_size=32))
    assert clip.shape == (1, 4, 3, 32, 32)


def test_frame_folder_padded_jpeg_names(tmp_path: Path) -> None:
    for index, frame in enumerate(marked_frames(3)):  # Something-v1 style 00001.jpg
        Image.fromarray(frame).save(tmp_path / f"{index + 1:05d}.jpg", quality=95)
    assert [decoded_index(f) for f in read_frames(tmp_path)] == [0, 1, 2]


def test_bad_frame_folders(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="no numbered image frames"):
        read_frames(tmp_path)
    (tmp_path / "img_00001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(VideoError, match="img_00001.jpg"):
        read_frames(tmp_path)
