"""The PyAV back end (FFmpeg bindings, wheels for every platform): the probe every video goes through, and
frame decoding by index, upright and at a reduced size.

Frame index i means the i-th frame in presentation order, as decord and a full sequential decode give it.
The probe demuxes the stream once (no decoding but the first frame) and keeps every packet's presentation
timestamp: sorted, they are the frames; the keyframes among them are where a seek may start. Seeking is a
fast path only: after a seek the first frame's timestamp says where it landed, and when that is not at or
before the wanted keyframe the seek is retried from an earlier one, down to a decode from the start.
"""

from __future__ import annotations

import bisect
import math
import struct
from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.stream import Disposition
from av.video.frame import VideoFrame

from workbench.decode import limits
from workbench.decode.errors import PartialDecode, cannot_decode
from workbench.decode.sources import Source

# Everything PyAV raises on bad input: FFmpeg errors, a missing stream, metadata it cannot parse.
_OPEN_ERRORS = (av.FFmpegError, OSError, ValueError, IndexError, OverflowError, EOFError, RuntimeError)
_DECODE_ERRORS = (av.FFmpegError, ValueError, OverflowError, EOFError, RuntimeError)
# FFmpeg demuxes a text file with a .txt name (the "tty" demuxer) as a video of ANSI art.
_TEXT_CODECS = frozenset({"ansi", "bintext", "xbin", "idf", "tty"})
# Full size: swscale's bicubic, as the ffmpeg command line converts (8-bit 4:2:0 comes out the same with any
# flag; 10-bit VP9 is byte-equal to the command line only with bicubic). Reduced size: bilinear, as
# decord's FFmpeg 4 scale filter (on 360p H.264, 94% of values equal to decord's; bicubic differs more).
_FULL_SIZE, _REDUCED_SIZE = "BICUBIC", "BILINEAR"


# The display matrix's 2x2 part, by sign (a, b, c, d) -> (quarter turns counter-clockwise, mirrored first):
# upright = rot90(fliplr(coded) if mirrored else coded, turns). Each of the 8 read off what the ffmpeg
# command line's autorotation makes of -display_rotation 0/90/180/270 with and without -display_hflip/vflip.
_ORIENTATIONS = {
    (1, 0, 0, 1): (0, False), (0, -1, 1, 0): (1, False), (-1, 0, 0, -1): (2, False),
    (0, 1, -1, 0): (3, False), (-1, 0, 0, 1): (0, True), (0, 1, 1, 0): (1, True),
    (1, 0, 0, -1): (2, True), (0, -1, -1, 0): (3, True),
}  # fmt: skip


def _orientation(frame: VideoFrame) -> tuple[int, bool]:
    """(quarter turns, mirrored) that make a decoded frame upright, from its display matrix."""
    for side_data in frame.side_data:
        if side_data.type == SideDataType.DISPLAYMATRIX:
            matrix = struct.unpack("<9i", bytes(side_data)[:36])
            signs = tuple(int(np.sign(value)) for value in (*matrix[0:2], *matrix[3:5]))
            if signs in _ORIENTATIONS:
                return _ORIENTATIONS[signs]
    # no matrix, or a turn that is not a quarter: the nearest quarter turn, as FFmpeg reports it
    return int(round((frame.rotation or 0) / 90.0)) % 4, False


def _rate(value: Fraction | None) -> float | None:
    return float(value) if value else None


class PyAVVideo:
    """A video opened with PyAV: probed on open (frame table, upright size, fps, rotation), then decoded."""

    decoder = "pyav"

    def __init__(self, source: Source) -> None:
        self.source, self.name = source, source.name
        self._threaded = True
        self._container: av.container.InputContainer | None = self._open_container()
        try:
            self._probe()
        except BaseException:
            self.close()
            raise

    # --- opening and probing ------------------------------------------------------------------

    def _open_container(self) -> av.container.InputContainer:
        # max_pixels bounds FFmpeg's own allocations (probing, a mid-stream size change) to our limit.
        options = {"max_pixels": str(limits.MAX_FRAME_PIXELS)}
        try:
            container = av.open(self.source.open(), options=options, metadata_errors="replace")
        except _OPEN_ERRORS:
            raise cannot_decode(self.name, "not a video or corrupt") from None
        # a cover picture (an "attached pic") is a video stream too, of one frame: not the video
        streams = [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]
        if not streams:
            container.close()
            raise cannot_decode(self.name, "no video stream")
        stream = streams[0]
        # Frame and slice threads: 8 frames of 360p/4K H.264 in 0.7x/0.7x the time on a busy 2-core
        # machine (measured). A frame thread reports an error with a later packet,
        # which is then lost too: after the first error the file is decoded again without threads.
        stream.thread_type = "AUTO" if self._threaded else "NONE"
        self._stream = stream
        return container

    def _probe(self) -> None:
        stream = self._stream
        context = stream.codec_context
        if context.name in _TEXT_CODECS:
            raise cannot_decode(self.name, "a text file, not a video")
        limits.check_frame_size(self.name, context.height, context.width)
        if not stream.time_base or stream.time_base <= 0:
            raise cannot_decode(self.name, "its timescale is 0")
        packets, first, complete = self._demux_once()
        # what the container claims (0 when it does not say), less the packets an edit list hides
        self.header_frames = max(0, stream.frames - self._hidden) if stream.frames else 0
        if not packets:
            raise cannot_decode(self.name, "video stream has no frames")
        if first is None:
            raise cannot_decode(self.name, "no frame decodes (not a video or corrupt)")
        # The display matrix (a phone's 90-degree turn, a mirrored selfie) comes with every decoded frame.
        self._turns, self.mirrored = _orientation(first)
        self.rotation = 90 * self._turns
        coded_height, coded_width = first.height, first.width
        limits.check_frame_size(self.name, coded_height, coded_width)
        turned = self._turns % 2 == 1
        self.height, self.width = (coded_width, coded_height) if turned else (coded_height, coded_width)
        self.container_format = self._live().format.name
        self._set_table(packets)
        self.packets = self.num_frames = len(packets)
        self.closed_gops = _closed_gops(packets)
        self.fps = self._fps(stream)
        limits.check_fps(self.name, self.fps)
        if not complete or self.header_frames > self.num_frames or self._pts is None:
            # A cut file's last packets may be partial, and without timestamps packets may not be
            # frames: trust the decode, not the container (decode the last GOP, or all without pts).
            self.num_frames = self._decodable_count()

    def _demux_once(self) -> tuple[list[tuple[int | None, bool]], VideoFrame | None, bool]:
        """Every packet's (pts, keyframe) in decode order, the first decoded frame, and whether the
        demuxer reached the end without an error."""
        packets: list[tuple[int | None, bool]] = []
        first: VideoFrame | None = None
        self._hidden = 0
        try:
            for packet in self._live().demux(self._stream):
                # An mp4 edit list (a stream-copy cut) marks packets to decode but never show: not frames.
                if packet.size and packet.is_discard:
                    self._hidden += 1
                elif packet.size:
                    packets.append((packet.pts, packet.is_keyframe))
                if first is None:
                    try:
                        decoded = packet.decode()  # the empty last packet flushes a delayed first frame
                    except _DECODE_ERRORS:
                        decoded = []
                    first = decoded[0] if decoded else None
        except _DECODE_ERRORS:
            return packets, first, False
        return packets, first, True

    def _set_table(self, packets: list[tuple[int | None, bool]]) -> None:
        """Frame i's pts and the keyframe indices; `_pts` None when timestamps cannot say the order."""
        stamps = [pts for pts, _ in packets]
        if None in stamps or len(set(stamps)) != len(stamps):
            self._pts: list[int] | None = None
            self._index: dict[int, int] = {}
            self._keyframes: list[int] = [0]
            return
        self._pts = sorted(stamps)  # type: ignore[arg-type]
        self._index = {pts: index for index, pts in enumerate(self._pts)}
        # 0 stands for "decode from the start", keyframe or not (after an edit list, frame 0 may not be one)
        self._keyframes = sorted({0, *(self._index[pts] for pts, key in packets if key)})

    def _fps(self, stream: av.video.stream.VideoStream) -> float | None:
        """The average frame rate; from the timestamps when the container gives none."""
        fps = _rate(stream.average_rate)
        if fps is None and self._pts is not None and len(self._pts) > 1:
            span = (self._pts[-1] - self._pts[0]) * stream.time_base
            fps = (len(self._pts) - 1) / float(span) if span > 0 else math.inf
        return fps if fps is not None else _rate(stream.guessed_rate)

    def _decodable_count(self) -> int:
        try:
            self.scan([self.num_frames - 1], None)
        except PartialDecode as partial:
            if partial.readable == 0:
                raise cannot_decode(self.name, "no frame decodes (not a video or corrupt)") from None
            return partial.readable
        return self.num_frames

    # --- decoding -------------------------------------------------------------------------------

    def decode(self, indices: list[int], height: int, width: int) -> np.ndarray:
        """Frames `indices` (sorted, unique) as upright uint8 (N,H,W,3) RGB at (height, width)."""
        turns, mirrored = self._turns, self.mirrored
        # Scale in the decoder's own converter, to the size before the turn: no full-size RGB copy.
        coded = (width, height) if turns % 2 else (height, width)
        full = coded == ((self.width, self.height) if turns % 2 else (self.height, self.width))

        def convert(frame: VideoFrame) -> np.ndarray:
            if full:
                rgb = frame.to_ndarray(format="rgb24", interpolation=_FULL_SIZE)
            else:
                rgb = frame.to_ndarray(height=coded[0], width=coded[1], format="rgb24",
                                       interpolation=_REDUCED_SIZE)
            if mirrored:
                rgb = rgb[:, ::-1]
            return np.rot90(rgb, turns) if turns else rgb

        found = self.scan(indices, convert)
        out = np.empty((len(indices), height, width, 3), np.uint8)
        for slot, index in enumerate(indices):
            out[slot] = found[index]
        return out

    def scan(self, indices: list[int], convert: Callable[[VideoFrame], np.ndarray] | None,
             ) -> dict[int, np.ndarray | None]:
        """Decode forward through `indices` (sorted), seeking ahead where a keyframe allows; converted
        frames by index. Raises PartialDecode(i) when frame i cannot be had (cut or corrupt file)."""
        for _ in range(3):
            try:
                return self._scan(indices, convert)
            except _Restart:
                continue  # again, without threads or indexing frames by decode order
        return self._scan(indices, convert)

    def _scan(self, indices: list[int], convert: Callable[[VideoFrame], np.ndarray] | None,
              ) -> dict[int, np.ndarray | None]:
        found: dict[int, np.ndarray | None] = {}
        wanted = deque(indices)
        while wanted:
            start = self._keyframe_before(wanted[0])
            for index, frame in self._frames_from(start):
                if index > wanted[0]:
                    raise PartialDecode(wanted[0])  # the decoder skipped it: an undecodable frame
                if index == wanted[0]:
                    found[index] = convert(frame) if convert else None
                    wanted.popleft()
                    if not wanted:
                        return found
                    if self._keyframe_before(wanted[0]) > index:
                        break  # a keyframe lies between: seeking there skips decoding
            else:
                raise PartialDecode(wanted[0])  # the stream ended first
        return found

    def _keyframe_before(self, index: int) -> int:
        return self._keyframes[bisect.bisect_right(self._keyframes, index) - 1]

    def _frames_from(self, start: int) -> Iterator[tuple[int, VideoFrame]]:
        """(index, frame) in presentation order from keyframe `start` (or an earlier one) on."""
        if self._pts is None:
            yield from self._sequential()
            return
        # The first frame out after a seek says where it landed: at or before `start`, every frame from
        # `start` on is whole (leading frames of an open GOP come before it and are never wanted here);
        # after it, frames in between would be missing or broken: seek earlier, at last decode from 0.
        for key in [k for k in self._keyframes if 0 < k <= start][::-1][:3]:
            frames = self._after_seek(key)
            landing = next(frames, None)
            if landing is not None and landing[0] <= key:
                yield landing
                yield from frames
                return
        yield from self._from_start()

    def _after_seek(self, key: int) -> Iterator[tuple[int, VideoFrame]]:
        """Frames after seeking to keyframe `key` (none when the seek fails)."""
        assert self._pts is not None
        try:
            self._live().seek(self._pts[key], stream=self._stream, backward=True, any_frame=False)
        except _DECODE_ERRORS:
            return
        yield from self._indexed(self._decoded())

    def _from_start(self) -> Iterator[tuple[int, VideoFrame]]:
        self._reopen()
        yield from self._indexed(self._decoded())

    def _sequential(self) -> Iterator[tuple[int, VideoFrame]]:
        """Without usable timestamps, frame i is the i-th frame out of a decode from the start."""
        self._reopen()
        yield from enumerate(self._decoded())

    def _indexed(self, frames: Iterator[VideoFrame]) -> Iterator[tuple[int, VideoFrame]]:
        for frame in frames:
            index = self._index.get(frame.pts) if frame.pts is not None else None
            if index is None:
                # a frame the packets did not announce: index it by order from now on
                self._pts, self._keyframes = None, [0]
                raise _Restart
            yield index, frame

    def _decoded(self) -> Iterator[VideoFrame]:
        """Decoded frames from the current position; a packet that fails to decode is skipped, as the
        ffmpeg command line does (the frame is then missing, which `scan` notices)."""
        try:
            for packet in self._live().demux(self._stream):
                try:
                    yield from packet.decode()
                except _DECODE_ERRORS:
                    if self._threaded:
                        self._threaded = False
                        self._reopen()
                        raise _Restart from None
                    continue
        except _DECODE_ERRORS:
            return  # a cut file: the demuxer cannot read on

    def _live(self) -> av.container.InputContainer:
        if self._container is None:
            self._container = self._open_container()
        return self._container

    def _reopen(self) -> None:
        self.close()
        self._container = self._open_container()

    def close(self) -> None:
        """Release the container and its decoder (threads, frame buffers); a later decode reopens it."""
        if self._container is not None:
            try:
                self._container.close()
            except _DECODE_ERRORS:
                pass
            self._container = None


def _closed_gops(packets: list[tuple[int | None, bool]]) -> bool:
    """Whether no keyframe has leading frames: no packet decoded after a keyframe shows before it.
    Seeking decoders that count frames from the keyframe (decord) are exact only then."""
    if any(pts is None for pts, _ in packets):
        return False
    later_min: float = math.inf
    for pts, key in reversed(packets):
        if key and later_min < pts:  # type: ignore[operator]
            return False
        later_min = min(later_min, pts)  # type: ignore[type-var]
    return True


class _Restart(Exception):
    """Decode again from the start of the scan: threads were switched off, or frames carry timestamps
    the packets did not (then frames are indexed by decode order)."""
