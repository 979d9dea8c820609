"""VideoWriter: frame count, exact frame rate and size survive a round trip through PyAV; audio
is carried over (copied or transcoded); failures leave no file under the final name."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from masklet.errors import InvalidInputError
from masklet.io.video import VideoWriter, frame_rate, pick_codec

SAMPLE_RATE = 16000
TONE_HZ = 440.0


def frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """Distinct flat colours per frame, so order can be checked after lossy coding."""
    out = []
    for i in range(count):
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = ((i * 40) % 220 + 20, (i * 90) % 220 + 20, 128)
        out.append(frame)
    return out


def probe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video)]
        info: dict[str, object] = {
            "count": len(decoded),
            "rate": video.average_rate,
            "size": (video.width, video.height),
            "codec": video.codec_context.name,
            "frames": decoded,
            "audio": None,
        }
    with av.open(str(path)) as container:
        if container.streams.audio:
            audio = container.streams.audio[0]
            samples = [f.to_ndarray() for f in container.decode(audio)]
            info["audio"] = {
                "codec": audio.codec_context.name,
                "rate": audio.rate,
                "samples": np.concatenate(samples, axis=-1),
            }
    return info


def write_source_with_audio(path: Path, audio_codec: str, seconds: float = 1.0) -> None:
    """A 25 fps video with a 440 Hz sine tone of `seconds` seconds."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream(audio_codec, rate=SAMPLE_RATE, layout="mono")
        sample_format = audio.codec_context.format.name
        total = int(seconds * SAMPLE_RATE)
        t = np.arange(total) / SAMPLE_RATE
        tone = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
        chunk = 1024
        for start in range(0, total, chunk):
            piece = tone[start : start + chunk]
            if sample_format == "s16":
                data = (piece * 32767).astype(np.int16)[None]
            else:
                data = piece.astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(data, format=sample_format, layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
        for i, array in enumerate(frames(int(seconds * 25), 32, 32)):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())


def dominant_frequency(samples: np.ndarray) -> float:
    mono = samples.reshape(-1, samples.shape[-1])[0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(mono))
    return float(np.fft.rfftfreq(mono.size, 1 / SAMPLE_RATE)[spectrum.argmax()])


def test_frame_rate_fractions() -> None:
    assert frame_rate(29.97) == Fraction(2997, 100)
    assert frame_rate(30000 / 1001) == Fraction(30000, 1001)
    assert frame_rate(24) == 24
    with pytest.raises(InvalidInputError, match="positive"):
        frame_rate(0)
    assert pick_codec("no-such-encoder") in {"libx264", "libopenh264", "mpeg4"}


@pytest.mark.parametrize("fps", [24, 25, 29.97, 30000 / 1001])
def test_round_trip_count_rate_size(tmp_path: Path, fps: float) -> None:
    source = frames(20, 64, 48)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=fps, size=(64, 48)) as writer:
        for frame in source:
            writer.write(frame)
    info = probe(out)
    assert info["codec"] == "h264"
    assert info["count"] == 20
    assert info["size"] == (64, 48)
    assert info["rate"] == frame_rate(fps)
    for decoded, original in zip(info["frames"], source, strict=True):  # type: ignore[call-overload]
        assert np.abs(decoded.astype(int) - original.astype(int)).mean() < 3.0


def test_odd_size_is_padded_to_even(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, fps=25, size=(63, 47)) as writer:
        assert writer.encoded_size == (64, 48)
        for frame in frames(5, 63, 47):
            writer.write(frame)
    info = probe(out)
    assert info["size"] == (64, 48) and info["count"] == 5
    first = info["frames"][0]  # type: ignore[index]
    # The padding repeats the edge, so the extra column looks like its neighbour.
    assert np.abs(first[:, 63].astype(int) - first[:, 62].astype(int)).mean() < 3.0


@pytest.mark.parametrize(("suffix", "audio_codec"), [(".mp4", "aac"), (".mkv", "pcm_s16le")])
def test_audio_is_kept(tmp_path: Path, suffix: str, audio_codec: str) -> None:
    source = tmp_path / f"source{suffix}"
    write_source_with_audio(source, audio_codec)
    out = tmp_path / "with_audio.mp4"
    with VideoWriter(out, fps=25, size=(32, 32), audio_from=source) as writer:
        for frame in frames(25, 32, 32):
            writer.write(frame)
    info = probe(out)
    assert info["count"] == 25
    audio = info["audio"]
    assert isinstance(audio, dict)
    assert audio["codec"] == "aac"  # copied as is from MP4; PCM is transcoded for MP4
    assert audio["rate"] == SAMPLE_RATE
    samples = audio["samples"]
    assert abs(samples.shape[-1] - SAMPLE_RATE) < 0.1 * SAMPLE_RATE  # about one second
    assert abs(dominant_frequency(samples) - TONE_HZ) < 5.0


def test_source_without_audio_gives_silent_video(tmp_path: Path) -> None:
    silent = tmp_path / "silent.mp4"
    with VideoWriter(silent, fps=25, size=(32, 32)) as writer:
        writer.write(frames(1, 32, 32)[0])
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=25, size=(32, 32), audio_from=silent) as writer:
        writer.write(frames(1, 32, 32)[0])
    assert probe(out)["audio"] is None


def test_exception_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, fps=25, size=(32, 32)) as writer:
            writer.write(frames(1, 32, 32)[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_empty_output(tmp_path: Path) -> None:
    out = tmp_path / "bad.mp4"
    with pytest.raises(InvalidInputError, match=r"expected shape \(32, 32, 3\).*got \(16, 32, 3\)"):
        with VideoWriter(out, fps=25, size=(32, 32)) as writer:
            writer.write(np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="uint8"):
        with VideoWriter(out, fps=25, size=(32, 32)) as writer:
            writer.write(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(InvalidInputError, match="no frames"):
        with VideoWriter(out, fps=25, size=(32, 32)):
            pass
    with pytest.raises(InvalidInputError, match="cannot read audio"):
        VideoWriter(out, fps=25, size=(32, 32), audio_from=tmp_path / "missing.wav")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_replaced_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with VideoWriter(out, fps=25, size=(32, 32)) as writer:
            writer.write(frames(1, 32, 32)[0])
            raise RuntimeError("interrupted")
    assert out.read_bytes() == b"old"
    with VideoWriter(out, fps=25, size=(32, 32)) as writer:
        writer.write(frames(1, 32, 32)[0])
    assert probe(out)["count"] == 1
