"""The kinds of video file people actually have, made small: lossless trims, variable frame
rate, jittered timestamps, audio that starts first, rotation, odd sizes, long GOPs.

The ffmpeg commands are those of issue 22 at a smaller size; the others are written with PyAV
(encoded, or remuxed packet by packet with rewritten timestamps, as a stream copy does).
`presented` is the independent expectation: every picture the decoder emits for the whole file,
ordered by presentation timestamp (ties in the order the decoder emitted them).
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

SIZE = "96x72"
FFMPEG = shutil.which("ffmpeg")


def ffmpeg(*args: str) -> None:
    if FFMPEG is None:  # .ci/run installs Debian's ffmpeg; a bare machine skips these clips
        pytest.skip("the ffmpeg binary is not installed (apt-get install ffmpeg)")
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def testsrc(seconds: float, gop: int = 30, bframes: int = 2, rate: int = 30) -> list[str]:
    source = f"testsrc2=size={SIZE}:rate={rate}"
    return ["-f", "lavfi", "-i", source, "-t", str(seconds), "-c:v", "libx264",
            "-g", str(gop), "-bf", str(bframes)]  # fmt: skip


def cut_editlist(folder: Path) -> Path:
    """A stream copy from 0.5 s of an MP4: an edit list hides the GOP's first 15 packets."""
    ffmpeg(*testsrc(3), str(folder / "src.mp4"))
    ffmpeg("-ss", "0.5", "-i", str(folder / "src.mp4"), "-c", "copy", str(folder / "edit.mp4"))
    return folder / "edit.mp4"


def cut_nonkey(folder: Path) -> Path:
    """A stream copy into MKV starting between keyframes: leading packets cannot be decoded."""
    ffmpeg(*testsrc(3), str(folder / "src.mp4"))
    out = folder / "nonkey.mkv"
    ffmpeg("-i", str(folder / "src.mp4"), "-ss", "0.5", "-c", "copy", "-copyinkf", str(out))
    return out


def vfr(folder: Path) -> Path:
    """30 fps for 1 s, then 10 fps: 50 frames whose timestamps change rate."""
    out = folder / "vfr.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate=30", "-frames:v", "50", "-vf",
           "setpts='if(lt(N,30),N/30,1+(N-30)/10)/TB'", "-fps_mode", "passthrough",
           "-c:v", "libx264", "-video_track_timescale", "90000", str(out))  # fmt: skip
    return out


def audio_early(folder: Path) -> Path:
    """Video starting at 0.5 s, AAC audio at 0."""
    out = folder / "audio_early.mp4"
    ffmpeg("-itsoffset", "0.5", "-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate=30",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1.5",
           "-map", "0:v", "-map", "1:a", "-fps_mode", "passthrough", "-c:v", "libx264",
           "-c:a", "aac", str(out))  # fmt: skip
    return out


def audio_late(folder: Path) -> Path:
    """MKV, video at 0 and PCM audio from 0.5 s: the overlay MP4 must transcode it to AAC."""
    out = folder / "audio_late.mkv"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate=30", "-itsoffset", "0.5",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "1.5",
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "pcm_s16le", str(out))  # fmt: skip
    return out


def encode(
    path: Path,
    count: int,
    size: tuple[int, int] = (96, 72),
    *,
    gop: int = 30,
    options: dict[str, str] | None = None,
    rotation: float | None = None,
    pix_fmt: str = "yuv420p",
) -> Path:
    """An H.264 clip of distinct frames (a colour ramp and a moving square), 30 fps."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.gop_size = gop
        stream.codec_context.options = options or {}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(count):
            array = np.full((height, width, 3), ((i * 37) % 200 + 20, (i * 91) % 200, 90), np.uint8)
            x, y = (i * 3) % (width - 12), (i * 2) % (height - 12)
            array[y : y + 12, x : x + 12] = 255
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def remux(source: Path, out: Path, retime: Callable[[int, av.Packet], None]) -> Path:
    """Copy `source`'s video packets into `out`, `retime(n, packet)` rewriting timestamps."""
    with av.open(str(source)) as inp, av.open(str(out), "w") as container:
        stream_in = inp.streams.video[0]
        stream_out = container.add_stream_from_template(stream_in)
        packets = [packet for packet in inp.demux(stream_in) if packet.size]
        for n, packet in enumerate(packets):
            retime(n, packet)
            packet.stream = stream_out
            container.mux(packet)
    return out


def negative_start(folder: Path) -> Path:
    """An MP4 whose first three frames have negative timestamps (an edit list hides them)."""
    source = encode(folder / "plain.mp4", 40)  # libx264 defaults: B-frames

    def shift(n: int, packet: av.Packet) -> None:
        ticks = round(3 / (30 * packet.time_base))  # three frames
        packet.pts, packet.dts = packet.pts - ticks, packet.dts - ticks

    return remux(source, folder / "negative.mp4", shift)


def jittered(folder: Path) -> Path:
    """60 frames whose jittered capture times were rounded to a 1/30 s clock: duplicates."""
    source = encode(folder / "nob.mp4", 60, options={"bframes": "0"})
    rng = random.Random(0)

    def jitter(n: int, packet: av.Packet) -> None:
        stamp = max(0, round((n / 30 + rng.uniform(-0.02, 0.02)) * 30))
        packet.time_base = Fraction(1, 30)
        packet.pts = packet.dts = stamp

    return remux(source, folder / "jitter.mkv", jitter)


def stepping_back(folder: Path) -> Path:
    """60 frames without B-frames whose timestamps step back: every 7th pair is swapped."""
    source = encode(folder / "nob.mp4", 60, options={"bframes": "0"})

    def swap(n: int, packet: av.Packet) -> None:
        packet.time_base = Fraction(1, 30)
        packet.pts = n + 3 + {3: 1, 4: -1}.get(n % 7, 0)
        packet.dts = n  # decode order stays increasing, as muxers require

    return remux(source, folder / "backstep.mkv", swap)


def rotated(folder: Path) -> Path:
    return encode(folder / "rotated.mp4", 20, rotation=90)


def odd_size(folder: Path) -> Path:
    """65x49: 4:4:4 stores odd sides (4:2:0 cannot), as camera and screen recorders do."""
    return encode(folder / "odd.mp4", 20, (65, 49), pix_fmt="yuv444p")


def long_gop(folder: Path) -> Path:
    """250 frames, a keyframe every 120, three B-frames and open GOPs: after each later
    keyframe come pictures shown before it, which reference the previous GOP."""
    options = {"x264-params": "open-gop=1:scenecut=0", "bf": "3"}
    return encode(folder / "long_gop.mp4", 250, gop=120, options=options)


def leading_pictures(path: Path) -> int:
    """Packets that follow a keyframe in decode order but are shown before it (open GOP)."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    count, key_pts = 0, None
    for packet in packets:
        if packet.is_keyframe:
            key_pts = packet.pts
        elif key_pts is not None and packet.pts < key_pts:
            count += 1
    return count


def truncated(folder: Path) -> Path:
    """A fast-start MP4 (index first, as streaming tools write) cut at 45 %: it opens, but the
    data of the later frames is missing."""
    whole = encode(folder / "whole.mp4", 48, gop=12)
    fast = folder / "fast.mp4"  # a stream copy with the moov box moved to the front
    with (
        av.open(str(whole)) as inp,
        av.open(str(fast), "w", options={"movflags": "faststart"}) as out,
    ):
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.size:
                packet.stream = stream
                out.mux(packet)
    data = fast.read_bytes()
    cut = folder / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.45)])
    return cut


def sound_only(path: Path) -> Path:
    """An M4A with one second of AAC and no pictures."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000, layout="mono")
        samples = np.sin(np.arange(48000) / 10).astype(np.float32)[None]  # [1, S]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 48000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


CLIPS: dict[str, Callable[[Path], Path]] = {
    "edit_list_trim": cut_editlist,
    "non_keyframe_cut": cut_nonkey,
    "negative_first_timestamp": negative_start,
    "variable_frame_rate": vfr,
    "jittered_duplicate_timestamps": jittered,
    "timestamps_stepping_back": stepping_back,
    "audio_before_video": audio_early,
    "audio_after_video_transcoded": audio_late,
    "rotation": rotated,
    "odd_size": odd_size,
    "long_open_gop": long_gop,
}


@dataclass(frozen=True)
class Presented:
    """What the decoder presents for a whole file (the expectation, decoded independently)."""

    frames: list[np.ndarray]  # [H, W, 3] uint8 RGB, rotation applied
    times: list[float]  # seconds
    time_base: Fraction
    packets: int


def presented(path: Path) -> Presented:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = []
        for n, frame in enumerate(container.decode(stream)):
            turns = round(frame.rotation / 90) % 4
            rgb = np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), turns))
            decoded.append((frame.pts, n, rgb))
        time_base = Fraction(stream.time_base)
    with av.open(str(path)) as container:
        packets = sum(1 for packet in container.demux(video=0) if packet.size)
    decoded.sort(key=lambda item: (item[0], item[1]))
    return Presented(
        frames=[rgb for _, _, rgb in decoded],
        times=[float(pts * time_base) for pts, _, _ in decoded],
        time_base=time_base,
        packets=packets,
    )


def audio_onset(path: Path) -> tuple[float, float] | None:
    """(when the sound starts, seconds; duration of one audio frame), None when silent.

    The onset is the first sample above a tenth of the peak: first timestamps would include
    an encoder's priming samples, which only some containers hide."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        start, chunks = None, []
        for frame in container.decode(stream):
            if start is None:
                start = float(frame.pts * frame.time_base)
            chunks.append(np.abs(frame.to_ndarray().astype(np.float64)).max(axis=0))
        samples = np.concatenate([c.reshape(-1) for c in chunks])  # mono clips: [S]
        onset = int(np.argmax(samples > samples.max() / 10))
        frame_size = stream.codec_context.frame_size or 1024
        return (start or 0.0) + onset / stream.rate, frame_size / stream.rate
