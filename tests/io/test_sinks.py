"""Per-frame sinks: the overlay MP4 keeps the source's frame count, rate, size and audio and
writes frames in order whatever order results come in; id PNGs and COCO JSON round-trip to the
masks; an interrupted run leaves nothing under a final name."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from masklet.errors import InvalidInputError
from masklet.io.masks import decode_rle, read_palette_png
from masklet.io.overlay import GREEN_SCREEN
from masklet.io.records import FrameRecord, frame_record
from masklet.io.sinks import CocoJsonSink, IdPngSink, OverlayVideoSink
from masklet.video.frames import ArraySource, VideoFileSource

W, H = 64, 48
N = 8
STRIPE = 4  # frame i's mask covers the first STRIPE * (i + 1) columns: the frame is readable
LOGIT = 10.0
SAMPLE_RATE = 16000


def source_frames(count: int = N) -> np.ndarray:
    """[T, H, W, 3] uint8, flat mid-gray: overlays are easy to tell from the source."""
    return np.full((count, H, W, 3), 100, np.uint8)


def stripe_mask(frame_idx: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[:, : STRIPE * (frame_idx + 1)] = True
    return mask


def result(frame_idx: int, masks: dict[int, np.ndarray] | None = None) -> FrameRecord:
    """A frame's plain records whose masks are exactly `masks` (default: one stripe)."""
    masks = masks if masks is not None else {1: stripe_mask(frame_idx)}
    scores = {i: float(torch.sigmoid(torch.tensor(2.0 + i))) for i in masks}
    return frame_record(frame_idx, (H, W), masks, scores, {i: f"thing{i}" for i in masks})


def decode(path: Path) -> tuple[list[np.ndarray], Fraction, tuple[int, int], bool]:
    """(frames [H, W, 3], average rate, (width, height), has audio)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return (
            frames,
            Fraction(stream.average_rate),
            (stream.width, stream.height),
            bool(container.streams.audio),
        )


def stripe_of(frame: np.ndarray) -> int:
    """Which frame's stripe a decoded binary-mask frame shows (-1 = no mask)."""
    white_columns = int((frame.mean(axis=(0, 2)) > 128).sum())
    return white_columns // STRIPE - 1


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(30000, 1001)])
def test_overlay_matches_source_count_rate_and_size(tmp_path: Path, fps: Fraction) -> None:
    source = ArraySource(source_frames(), fps=float(fps))
    out = tmp_path / "o.mp4"
    with OverlayVideoSink(out, source, mask_type="binary") as sink:
        for i in range(N):
            sink.write(result(i))
    frames, rate, size, audio = decode(out)
    assert len(frames) == N and rate == fps and size == (W, H) and not audio
    assert [stripe_of(f) for f in frames] == list(range(N))


def write_video_with_audio(path: Path, seconds: float = 1.0, fps: int = 25) -> None:
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        audio = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        total = int(seconds * SAMPLE_RATE)
        tone = (0.3 * np.sin(np.arange(total) * 2 * np.pi * 440 / SAMPLE_RATE)).astype(np.float32)
        frame_size = audio.codec_context.frame_size or 1024
        for start in range(0, total, frame_size):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + frame_size], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
        for i, array in enumerate(source_frames(int(seconds * fps))):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())


def test_overlay_keeps_the_source_audio(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    write_video_with_audio(src, seconds=0.4)
    with VideoFileSource(src) as source:
        out = tmp_path / "o.mp4"
        with OverlayVideoSink(out, source) as sink:
            for i in range(len(source)):
                sink.write(result(i))
        frames, rate, _, audio = decode(out)
        assert audio and rate == 25 and len(frames) == len(source) == 10
        silent = tmp_path / "silent.mp4"
        with OverlayVideoSink(silent, source, keep_audio=False) as sink:
            sink.write(result(0))
        assert not decode(silent)[3]


def test_output_frame_interval_writes_every_nth_frame_at_a_lower_rate(tmp_path: Path) -> None:
    source = ArraySource(source_frames(), fps=24.0)
    out = tmp_path / "o.mp4"
    with OverlayVideoSink(out, source, mask_type="binary", output_frame_interval=3) as sink:
        for i in range(N):
            sink.write(result(i))
    frames, rate, _, _ = decode(out)
    assert rate == 8  # 24 / 3: the duration is kept
    assert [stripe_of(f) for f in frames] == [0, 3, 6]
    with pytest.raises(InvalidInputError, match="output_frame_interval"):
        OverlayVideoSink(tmp_path / "x.mp4", source, output_frame_interval=0)


def test_each_mask_type(tmp_path: Path) -> None:
    image = source_frames(1)
    image[0, :, W // 2 :] = (30, 60, 200)  # right half blue: the mask covers the left half
    source = ArraySource(image, fps=10.0)
    mask = np.zeros((H, W), bool)
    mask[:, : W // 2] = True
    rendered = {}
    for mask_type in ("binary", "highlighted", "greenscreen"):
        out = tmp_path / f"{mask_type}.mp4"
        with OverlayVideoSink(out, source, mask_type=mask_type) as sink:
            sink.write(result(0, {1: mask}))
        rendered[mask_type] = decode(out)[0][0].astype(int)
    inside, outside = (slice(8, -8), slice(4, W // 2 - 6)), (slice(8, -8), slice(W // 2 + 6, -4))
    tol = 12  # H.264 is lossy; flat areas away from edges stay within a few levels
    binary = rendered["binary"]
    assert (binary[inside] > 255 - tol).all() and (binary[outside] < tol).all()
    green = rendered["greenscreen"]
    assert np.abs(green[outside] - np.array(GREEN_SCREEN)).max() < 2 * tol
    assert np.abs(green[inside] - 100).max() < tol
    highlighted = rendered["highlighted"]
    assert np.abs(highlighted[outside] - image[0][outside]).max() < tol  # untouched
    assert np.abs(highlighted[inside] - 100).mean() > 20  # tinted
    with pytest.raises(InvalidInputError, match="unknown mask type 'sepia'"):
        OverlayVideoSink(tmp_path / "x.mp4", source, mask_type="sepia")


def test_out_of_order_results_are_written_in_order_without_holding_them(tmp_path: Path) -> None:
    """The order `track(direction="both")` gives from a prompt on frame 3."""
    source = ArraySource(source_frames(), fps=24.0)
    out = tmp_path / "o.mp4"
    with OverlayVideoSink(out, source, mask_type="binary", tracked_frames=range(N)) as sink:
        for i in range(3, N):
            sink.write(result(i))
        assert sink.frames_written == 0 and sink.buffered_frames == N - 3
        for i in (2, 1):
            sink.write(result(i))
        sink.write(result(0))
        assert sink.frames_written == N and sink.buffered_frames == 0
        with pytest.raises(InvalidInputError, match="frame 4 arrived after"):
            sink.write(result(4))
    assert [stripe_of(f) for f in decode(out)[0]] == list(range(N))


def test_frames_outside_the_tracked_range_are_written_unmasked_at_once(tmp_path: Path) -> None:
    source = ArraySource(source_frames(), fps=24.0)
    out = tmp_path / "o.mp4"
    with OverlayVideoSink(out, source, mask_type="binary", tracked_frames=range(3, 7)) as sink:
        for i in range(3, 6):
            sink.write(result(i))
            assert sink.buffered_frames == 0 and sink.frames_written == i + 1
        # frame 6 is tracked but its result never comes: close() writes it (and 7) unmasked
    assert [stripe_of(f) for f in decode(out)[0]] == [-1, -1, -1, 3, 4, 5, -1, -1]


def test_backward_order_is_spooled_not_kept_in_memory(tmp_path: Path) -> None:
    source = ArraySource(source_frames(), fps=24.0)
    out = tmp_path / "o.mp4"
    with OverlayVideoSink(out, source, mask_type="binary", tracked_frames=range(0, 6)) as sink:
        for i in range(5, -1, -1):
            sink.write(result(i))
    assert [stripe_of(f) for f in decode(out)[0]] == [0, 1, 2, 3, 4, 5, -1, -1]
    assert leftovers(tmp_path) == ["o.mp4"]  # the spool leaves no file


def test_id_pngs_hold_the_tracked_ids(tmp_path: Path) -> None:
    folder = tmp_path / "masks"
    a, b = np.zeros((H, W), bool), np.zeros((H, W), bool)
    a[5:20, 5:20], b[10:30, 30:50] = True, True
    with IdPngSink(folder) as sink:
        for i in (2, 0, 1):
            sink.write(result(i, {3: a, 7: b}))
        assert not folder.exists()  # staged until close
    assert leftovers(folder) == ["00000.png", "00001.png", "00002.png"]
    ids = read_palette_png(folder / "00001.png")
    assert ids.dtype == np.uint8
    assert np.array_equal(ids, np.where(b, 7, np.where(a, 3, 0)))
    assert leftovers(tmp_path) == ["masks"]


def test_id_pngs_above_255_are_16_bit(tmp_path: Path) -> None:
    a = np.zeros((H, W), bool)
    a[:10] = True
    with IdPngSink(tmp_path / "m") as sink:
        sink.write(result(0, {300: a}))
    ids = read_palette_png(tmp_path / "m" / "00000.png")
    assert ids.dtype == np.uint16 and np.array_equal(ids, np.where(a, 300, 0))


def test_coco_json_round_trips_and_sorts_frames(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    source = ArraySource(source_frames(), fps=24.0)
    a = np.zeros((H, W), bool)
    a[3:9, 4:12] = True
    with CocoJsonSink(path, source, file_name="clip.mp4") as sink:
        for i in (3, 4, 2, 0):
            sink.write(result(i, {1: stripe_mask(i), 2: a}))
        assert not path.exists()
    data = json.loads(path.read_text())
    assert data["video"] == {
        "file_name": "clip.mp4", "fps": 24.0, "width": W, "height": H, "num_frames": N,
    }  # fmt: skip
    assert data["objects"] == [{"id": 1, "name": "thing1"}, {"id": 2, "name": "thing2"}]
    assert [f["frame"] for f in data["frames"]] == [0, 2, 3, 4]
    for frame in data["frames"]:
        one, two = frame["annotations"]
        # one overlap policy in every output: the pixels both claim go to the higher score (2)
        overlapping = frame["frame"] > 0  # frame 0's stripe ends before `a` starts
        assert (stripe_mask(frame["frame"]) & a).any() == overlapping
        assert np.array_equal(decode_rle(one["segmentation"]), stripe_mask(frame["frame"]) & ~a)
        assert np.array_equal(decode_rle(two["segmentation"]), a)
        assert two["bbox"] == [4.0, 3.0, 8.0, 6.0] and two["area"] == 48
        assert two["name"] == "thing2" and two["score"] == pytest.approx(1 / (1 + np.exp(-4)))
    assert leftovers(tmp_path) == ["m.json"]


def test_output_frame_interval_applies_to_pngs_and_json(tmp_path: Path) -> None:
    with IdPngSink(tmp_path / "m", output_frame_interval=2) as pngs:
        with CocoJsonSink(tmp_path / "m.json", output_frame_interval=2) as js:
            for i in range(5):
                pngs.write(result(i))
                js.write(result(i))
    assert leftovers(tmp_path / "m") == ["00000.png", "00002.png", "00004.png"]
    data = json.loads((tmp_path / "m.json").read_text())
    assert [f["frame"] for f in data["frames"]] == [0, 2, 4]
    assert data["video"]["width"] == W and data["video"]["num_frames"] is None


@pytest.mark.parametrize("kind", ["overlay", "pngs", "json"])
def test_interrupted_write_leaves_no_file(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    source = ArraySource(source_frames(), fps=24.0)
    sinks = {
        "overlay": lambda: OverlayVideoSink(out / "o.mp4", source),
        "pngs": lambda: IdPngSink(out / "masks"),
        "json": lambda: CocoJsonSink(out / "m.json", source),
    }
    with pytest.raises(KeyboardInterrupt):
        with sinks[kind]() as sink:
            for i in range(3):
                sink.write(result(i))
            raise KeyboardInterrupt
    assert leftovers(out) == []
