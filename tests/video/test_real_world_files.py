"""Issue 22's matrix: for each kind of file people have, the frame source presents exactly the
decoder's frames (count, pixels, times; forward, backward and shuffled access), and the
overlay MP4 and the RLE JSON carry the source's own timing, audio offset included."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from masklet.io.records import frame_record
from masklet.io.sinks import CocoJsonSink, OverlayVideoSink
from masklet.video.frames import VideoFileSource
from tests.video import clips
from tests.video.clips import CLIPS, Presented, audio_onset, presented


@pytest.fixture(scope="module", params=sorted(CLIPS))
def clip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    name: str = request.param
    return CLIPS[name](tmp_path_factory.mktemp(name))


@pytest.fixture(scope="module")
def expected(clip: Path) -> Presented:
    return presented(clip)


def test_the_clips_have_the_property_they_are_named_for(clip: Path, expected: Presented) -> None:
    """Guards the matrix itself: each clip really is the awkward case it claims to be."""
    times = expected.times
    steps = np.diff(times)
    kind = clip.stem
    if kind in {"edit", "nonkey", "negative"}:
        assert expected.packets > len(expected.frames)  # packets the decoder does not present
    if kind == "vfr":
        assert steps.min() < 0.04 < 0.09 < steps.max()  # 30 fps then 10 fps
    if kind == "jitter":
        assert max(Counter(times).values()) > 1  # duplicate timestamps
    if kind in {"audio_early", "nonkey"}:
        assert times[0] >= 0.45  # the first picture is shown late
    if kind == "audio_early":
        start = audio_onset(clip)
        assert start is not None and start[0] < times[0] - 0.4
    if kind == "audio_late":
        start = audio_onset(clip)
        assert start is not None and start[0] > times[0] + 0.4
    if kind == "backstep":
        with av.open(str(clip)) as container:
            stamps = [p.pts for p in container.demux(video=0) if p.size]
        assert any(b < a for a, b in zip(stamps, stamps[1:]))  # decode order steps back
    if kind == "long_gop":
        assert clips.leading_pictures(clip) > 0
    assert len(expected.frames) >= 20
    assert len({frame.tobytes() for frame in expected.frames}) > len(expected.frames) // 2


def test_frames_count_pixels_and_times_equal_the_decoders(clip: Path, expected: Presented) -> None:
    with VideoFileSource(clip) as source:
        assert source.num_frames == len(expected.frames)
        assert (source.height, source.width) == expected.frames[0].shape[:2]
        for i, want in enumerate(expected.frames):  # forward, as tracking reads
            assert np.array_equal(source.get(i), want), f"frame {i}"
            assert source.frame_time(i) == pytest.approx(expected.times[i], abs=1e-9)
        # Forward reading continues one decoder: one seek to start, one more at most per cut.
        assert source.seek_count <= 2


def test_backward_and_random_access_is_frame_exact(clip: Path, expected: Presented) -> None:
    order = list(range(len(expected.frames)))
    shuffled = random.Random(0).sample(order, len(order))
    with VideoFileSource(clip) as source:
        for i in [*reversed(order), *shuffled]:
            assert np.array_equal(source.get(i), expected.frames[i]), f"frame {i}"
        assert len(source.cache) <= source.cache.capacity  # bounded memory


def overlay_times(path: Path) -> tuple[list[float], tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(f.pts * f.time_base) for f in container.decode(stream)]
        return times, (stream.codec_context.width, stream.codec_context.height)


def test_overlay_keeps_the_source_timing_and_audio_offset(
    clip: Path, expected: Presented, tmp_path: Path
) -> None:
    out = tmp_path / "overlay.mp4"
    with VideoFileSource(clip) as source:
        with OverlayVideoSink(out, source, tracked_frames=range(0)) as sink:
            size = sink._writer.encoded_size
    times, written_size = overlay_times(out)
    assert written_size == size
    assert len(times) == len(expected.times)
    tick = float(expected.time_base)
    errors = np.abs(np.asarray(times) - np.asarray(expected.times))
    # One source tick; frames sharing a timestamp are moved one 90 kHz tick apart.
    assert errors.max() <= tick + 1e-9
    assert np.all(np.diff(times) > 0)  # a playable file: strictly increasing
    source_audio, written_audio = audio_onset(clip), audio_onset(out)
    assert (source_audio is None) == (written_audio is None)
    if source_audio is not None and written_audio is not None:
        audio_frame = written_audio[1]  # AAC: 1024 samples
        offset_in = expected.times[0] - source_audio[0]
        offset_out = times[0] - written_audio[0]
        assert abs(offset_out - offset_in) <= audio_frame


def test_odd_sizes_are_padded_in_the_overlay_only(tmp_path: Path) -> None:
    """Documented in io/video.py: 4:2:0 H.264 needs even sides; the masks keep the source's."""
    clip = CLIPS["odd_size"](tmp_path)
    with VideoFileSource(clip) as source:
        assert (source.width, source.height) == (65, 49)
        with OverlayVideoSink(tmp_path / "o.mp4", source, tracked_frames=range(0)):
            pass
        first = source.get(0)
    with av.open(str(tmp_path / "o.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert frame.shape == (50, 66, 3)
    diff = np.abs(frame[:49, :65].astype(int) - first.astype(int)).mean()
    assert diff < 4  # the picture itself is unchanged (lossy H.264 aside)
    # the padding repeats the last column and row
    assert np.abs(frame[:49, 65].astype(int) - frame[:49, 64].astype(int)).mean() < 4


def test_json_carries_each_frames_time(clip: Path, expected: Presented, tmp_path: Path) -> None:
    """Records stamped with the source's times (as the video pipeline does) reach the JSON next
    to their frame index, whatever order they arrive in."""
    out = tmp_path / "masks.json"
    with VideoFileSource(clip) as source:
        h, w = source.height, source.width
        mask = np.zeros((h, w), bool)
        mask[: h // 2, : w // 2] = True  # a quarter of the frame: a non-empty mask
        with CocoJsonSink(out, source, file_name=clip.name) as sink:
            for i in reversed(range(source.num_frames)):  # backward tracking order
                time = source.frame_time(i)
                sink.write(frame_record(i, (h, w), {1: mask}, {1: 0.9}, time=time))
    frames = json.loads(out.read_text())["frames"]
    assert [f["frame"] for f in frames] == list(range(len(expected.times)))
    assert frames[0]["annotations"][0]["area"] == (h // 2) * (w // 2)
    assert [f["time"] for f in frames] == pytest.approx(expected.times, abs=1e-9)


def test_cli_keeps_the_timing_of_a_trimmed_vfr_clip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`masklet video` end to end (tiny random model): a stream-copy cut of a VFR clip that
    starts between keyframes, tracked both ways; the overlay and JSON carry the source's
    presented frames and times."""
    from masklet.cli import video as video_cli
    from masklet.cli.main import main
    from masklet.modeling.sam2 import build_model
    from tests.parity.reference import small_config

    source = tmp_path / "vfr_src.mkv"
    ffmpeg_args = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=30", "-frames:v", "30",
                   "-vf", "setpts='if(lt(N,15),N/30,0.5+(N-15)/10)/TB'", "-fps_mode",
                   "passthrough", "-c:v", "libx264", "-g", "8", str(source)]  # fmt: skip
    clips.ffmpeg(*ffmpeg_args)
    clip = tmp_path / "cut.mkv"
    clips.ffmpeg("-i", str(source), "-ss", "0.35", "-c", "copy", "-copyinkf", str(clip))
    expected = presented(clip)
    assert expected.packets > len(expected.frames) >= 12
    torch.manual_seed(0)
    model = build_model(small_config("sam2.1_hiera_tiny", image_size=128)).eval()
    monkeypatch.setattr(video_cli, "load_model_from_args", lambda args: model)
    overlay, masks_json = tmp_path / "o.mp4", tmp_path / "m.json"
    argv = ["video", str(clip), "--click-coordinates", "[20,20]", "--click-frames", "5",
            "--direction", "both", "-o", str(overlay), "--json", str(masks_json)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    frames = json.loads(masks_json.read_text())["frames"]
    assert [f["frame"] for f in frames] == list(range(len(expected.times)))
    assert [f["time"] for f in frames] == pytest.approx(expected.times, abs=1e-9)
    times, _ = overlay_times(overlay)
    assert len(times) == len(expected.times)
    assert np.abs(np.asarray(times) - expected.times).max() <= float(expected.time_base)
