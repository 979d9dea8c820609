"""MP4 writing: H.264/yuv420p with the source's timing, optional audio, atomic output.

Usage::

    with VideoWriter("out.mp4", fps=source.fps, size=(source.width, source.height),
                     audio_from="in.mp4", time_base=SOURCE_TIME_BASE) as writer:
        for i in range(len(source)):          # [H, W, 3] uint8 RGB
            writer.write(source.get(i), time=source.frame_time(i))

Timing: without `time`, frame n is shown at `n / fps` (constant rate from 0). With `time`
(seconds), each frame keeps its own presentation time: a variable-frame-rate source stays
variable, a source whose first frame starts late keeps that offset, and copied audio keeps its
own timestamps, so sound and pictures stay as aligned as they were in the source. Times are
rounded to `time_base` (90 kHz, finer than any common video time base); a time equal to or
before the previous frame's (duplicate timestamps in broken recordings) is moved one tick later,
since a file cannot show two pictures at once.

Size: H.264 in 4:2:0 needs even sides, so an odd-sized source (321x239) is written padded to
even (322x240) by repeating its last column/row; `encoded_size` says what was written. Masks,
PNGs and JSON keep the source's own size; only this file is padded.

Nothing appears under the final name until the `with` block ends without an exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np

from masklet.errors import InvalidInputError
from masklet.io.atomic import Publishing, atomic_output

# Tried in order when the requested encoder is missing from the PyAV wheel.
FALLBACK_CODECS = ("libx264", "h264", "libopenh264", "mpeg4")
# H.264 in 4:2:0 stores chroma at half resolution and its cropping window moves in steps of two
# luma pixels, so an odd width or height cannot be represented at all. We pad such frames by
# repeating the last row/column; even-sized sources come back exactly their own size.
EVEN_SIZE_CODECS = frozenset({"libx264", "libopenh264", "h264"})
PIXEL_FORMAT = "yuv420p"  # the only 4:2:0 layout every browser and phone plays
# Constant-quality factor for x264: 18 is visually lossless for mask overlays' hard edges.
DEFAULT_CRF = 18
# x264 speed preset: overlays are written next to model inference; encoding must not dominate.
DEFAULT_PRESET = "veryfast"
# Time base for frames written with their own times: the MPEG 90 kHz clock represents every
# common video time base's ticks (1/1000, 1/15360, 1001/30000, ...) to within 11 microseconds.
SOURCE_TIME_BASE = Fraction(1, 90_000)
# Denominator bound when turning a float fps into a fraction: keeps 30000/1001 (29.97...) exact
# and turns a literal 29.97 into 2997/100 rather than a 52-bit binary fraction.
MAX_RATE_DENOMINATOR = 1001 * 1000
# Audio codecs an MP4/MOV can carry as they are; anything else is transcoded to AAC.
MP4_COPYABLE_AUDIO = frozenset({"aac", "mp3", "alac", "ac3", "eac3"})
MP4_SUFFIXES = frozenset({".mp4", ".m4v", ".mov"})
TRANSCODED_AUDIO_CODEC = "aac"
# Positioned layouts for channel counts that arrive unlabelled ("2 channels"); AAC needs one.
STANDARD_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


def frame_rate(fps: float | Fraction) -> Fraction:
    """The exact rational frame rate for `fps` (29.97 -> 2997/100, 30000/1001 stays)."""
    if isinstance(fps, Fraction):
        rate = fps
    else:
        rate = Fraction(float(fps)).limit_denominator(MAX_RATE_DENOMINATOR)
    if rate <= 0:
        raise InvalidInputError(f"fps must be positive, got {fps}")
    return rate


def _named_layout(layout: av.AudioLayout) -> str:
    """A layout name AAC accepts: PCM in MKV/WAV often has channels without positions."""
    return (
        STANDARD_LAYOUTS.get(layout.nb_channels, layout.name)
        if "channels" in layout.name
        else layout.name
    )


def pick_codec(requested: str) -> str:
    """`requested` if the PyAV wheel can encode it, else the first available fallback."""
    for name in (requested, *FALLBACK_CODECS):
        try:
            return av.codec.Codec(name, "w").name
        except (av.FFmpegError, ValueError):
            continue
    raise InvalidInputError(
        f"no video encoder available: tried {requested!r} and {', '.join(FALLBACK_CODECS)}; "
        "install a PyAV wheel built with libx264"
    )


class VideoWriter(Publishing):
    """Encode `[H, W, 3]` uint8 RGB frames into a video file, atomically.

    `size` is `(width, height)`. Odd sizes with H.264 are padded up to even (see
    EVEN_SIZE_CODECS); `encoded_size` tells the size actually written. If `audio_from` names a
    file with an audio stream, its first audio track is copied into the output (transcoded to
    AAC when the MP4 container cannot carry the codec), interleaved with the video.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        size: tuple[int, int],
        audio_from: str | Path | None = None,
        codec: str = "libx264",
        crf: int = DEFAULT_CRF,
        *,
        time_base: Fraction | None = None,
    ) -> None:
        width, height = size
        if width < 1 or height < 1:
            raise InvalidInputError(f"video size must be positive (width, height), got {size}")
        self.path = Path(path)
        self.size = (int(width), int(height))
        self.rate = frame_rate(fps)
        self.codec = pick_codec(codec)
        even = self.codec in EVEN_SIZE_CODECS
        self.encoded_size = (width + width % 2, height + height % 2) if even else self.size
        # The clock frames are stamped in: one tick per frame unless times are given.
        self.time_base = time_base if time_base is not None else 1 / self.rate
        self.frames_written = 0
        self._last_pts: int | None = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._audio_source: av.container.InputContainer | None = None
        self._audio_out: av.audio.stream.AudioStream | None = None
        self._copy_audio = False
        self._pending_audio: av.Packet | None = None
        self._audio_next: int | None = None  # pts of the next transcoded audio frame
        self._exit_stack = contextlib.ExitStack()
        self._closed = False
        temp = self._exit_stack.enter_context(atomic_output(self.path))
        try:
            options = {"movflags": "+faststart"} if self.path.suffix.lower() in MP4_SUFFIXES else {}
            self._container = av.open(str(temp), "w", options=options)
            self._video = cast(
                av.video.stream.VideoStream, self._container.add_stream(self.codec, rate=self.rate)
            )
            self._video.width, self._video.height = self.encoded_size
            self._video.pix_fmt = PIXEL_FORMAT
            self._video.codec_context.time_base = self.time_base
            if self.codec == "libx264":
                self._video.codec_context.options = {"crf": str(crf), "preset": DEFAULT_PRESET}
            if audio_from is not None:
                self._open_audio(Path(audio_from))
        except BaseException as error:
            self.discard(error)
            raise

    # -- audio -----------------------------------------------------------------------------

    def _open_audio(self, source: Path) -> None:
        try:
            self._audio_source = av.open(str(source))
        except (av.FFmpegError, OSError) as error:
            raise InvalidInputError(
                f"cannot read audio from {str(source)!r}: {error}; pass audio_from=None to "
                "write the video without sound"
            ) from error
        if not self._audio_source.streams.audio:
            return  # a silent source: the output is silent too
        audio_in = self._audio_source.streams.audio[0]
        mp4 = self.path.suffix.lower() in MP4_SUFFIXES
        self._copy_audio = not mp4 or audio_in.codec_context.name in MP4_COPYABLE_AUDIO
        if self._copy_audio:
            self._audio_out = cast(
                av.audio.stream.AudioStream, self._container.add_stream_from_template(audio_in)
            )
        else:
            layout = _named_layout(audio_in.layout)
            self._audio_out = cast(
                av.audio.stream.AudioStream,
                self._container.add_stream(
                    TRANSCODED_AUDIO_CODEC, rate=audio_in.rate, layout=layout
                ),
            )
        self._audio_packets = self._audio_source.demux(audio_in)

    def _mux_audio_until(self, seconds: float | None) -> None:
        """Mux source audio packets that start before `seconds` (all of them if None)."""
        try:
            self._mux_audio_packets(seconds)
        except av.FFmpegError as error:
            source = self._audio_source.name if self._audio_source else "the audio source"
            raise InvalidInputError(
                f"cannot copy audio from {source!r}: {error}; pass audio_from=None to write "
                "the video without sound"
            ) from error

    def _mux_audio_packets(self, seconds: float | None) -> None:
        if self._audio_out is None:
            return
        while self._audio_packets is not None:
            packet = self._pending_audio or next(self._audio_packets, None)
            self._pending_audio = None
            if packet is None:
                self._audio_packets = None
                break
            if packet.dts is None:  # demuxer flush packet
                continue
            start = packet.pts if packet.pts is not None else packet.dts
            if seconds is not None and start * packet.time_base > seconds:
                self._pending_audio = packet  # belongs after the next video frame
                break
            if self._copy_audio:
                packet.stream = self._audio_out
                self._container.mux(packet)
            else:
                for frame in cast(list[av.AudioFrame], packet.decode()):
                    self._container.mux(self._audio_out.encode(self._restamp(frame)))
        if seconds is None and not self._copy_audio:
            self._container.mux(self._audio_out.encode(None))  # flush the AAC encoder
            self._audio_out = None

    def _restamp(self, frame: av.AudioFrame) -> av.AudioFrame:
        """Stamp a decoded frame by samples since the source's first one, in the encoder's
        clock: the sound stays contiguous and starts when the source's audio started (a late
        start would otherwise play early against the pictures)."""
        assert self._audio_out is not None
        rate = self._audio_out.rate
        if self._audio_next is None:
            pts, time_base = frame.pts, frame.time_base
            start = pts * time_base if pts is not None and time_base is not None else 0
            self._audio_next = round(start * rate)
        frame.pts, frame.time_base = self._audio_next, Fraction(1, rate)
        self._audio_next += round(frame.samples * rate / frame.sample_rate)
        return frame

    # -- video -----------------------------------------------------------------------------

    def write(self, frame: np.ndarray, time: float | None = None) -> None:
        """Append one `[H, W, 3]` uint8 RGB frame of exactly `size`, shown at `time` seconds
        (default: `frames_written / fps`)."""
        if self._closed:
            raise InvalidInputError(f"cannot write to {str(self.path)!r}: the writer is closed")
        width, height = self.size
        if not isinstance(frame, np.ndarray) or frame.shape != (height, width, 3):
            got = getattr(frame, "shape", type(frame).__name__)
            raise InvalidInputError(
                f"frame {self.frames_written}: expected shape ({height}, {width}, 3) to match "
                f"size {width}x{height}, got {got}"
            )
        if frame.dtype != np.uint8:
            raise InvalidInputError(
                f"frame {self.frames_written}: expected dtype uint8 RGB, got {frame.dtype}"
            )
        pad_x, pad_y = self.encoded_size[0] - width, self.encoded_size[1] - height
        if pad_x or pad_y:
            frame = np.pad(frame, ((0, pad_y), (0, pad_x), (0, 0)), mode="edge")  # even H, W
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if time is None:
            time = float(self.frames_written / self.rate)
        pts = round(Fraction(time) / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # duplicate or backward time: one tick after the last
        video_frame.pts = self._last_pts = pts
        self._container.mux(self._video.encode(video_frame))
        self.frames_written += 1
        # Audio up to where the next picture is due keeps the two streams interleaved.
        self._mux_audio_until(float(pts * self.time_base + 1 / self.rate))

    def close(self) -> None:
        """Flush encoders and move the finished file to `path`."""
        if self._closed:
            return
        if self.frames_written == 0:
            error = InvalidInputError(f"no frames were written to {str(self.path)!r}")
            self.discard(error)
            raise error
        try:
            self._container.mux(self._video.encode(None))  # flush delayed (B-)frames
            self._mux_audio_until(None)
            self._container.close()
        except BaseException as error:
            self.discard(error)
            raise
        self._close_audio_source()
        self._closed = True
        self._exit_stack.close()  # atomic rename to the final name

    def discard(self, error: BaseException) -> None:
        """Drop the partial file: nothing is left under the final name."""
        self._closed = True
        container = getattr(self, "_container", None)
        with contextlib.suppress(Exception):
            if container is not None:
                container.close()
        self._close_audio_source()
        # Passing the exception on makes atomic_output delete instead of rename.
        with contextlib.suppress(BaseException):
            self._exit_stack.__exit__(type(error), error, error.__traceback__)

    def _close_audio_source(self) -> None:
        if self._audio_source is not None:
            with contextlib.suppress(Exception):
                self._audio_source.close()
            self._audio_source = None
