"""Frame sources: decoded MP4 frames match what was encoded, in any access order, in bounded
memory; folders sort naturally; arrays and live streams; broken inputs raise typed errors."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from masklet.errors import InvalidInputError
from masklet.video.frames import (
    ArraySource,
    FolderSource,
    FrameIndexError,
    FrameSource,
    LiveSource,
    VideoFileSource,
    natural_key,
    open_frames,
)

WIDTH, HEIGHT = 64, 48
SQUARE = 12


def synthetic_frames(count: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """[T, H, W, 3] uint8: a distinct background colour per frame and a moving white square."""
    frames = np.empty((count, height, width, 3), np.uint8)
    for i in range(count):
        frames[i] = ((i * 37) % 200 + 20, (i * 91) % 200 + 20, (i * 53) % 200 + 20)
        x, y = (i * 3) % (width - SQUARE), (i * 2) % (height - SQUARE)
        frames[i, y : y + SQUARE, x : x + SQUARE] = 255
    return frames


def encode(
    path: Path,
    frames: np.ndarray,
    fps: Fraction = Fraction(25),
    gop: int = 10,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    rotation: float | None = None,
) -> Path:
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.options = options or {}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def identity(decoded: np.ndarray, encoded: np.ndarray) -> int:
    """Index of the encoded frame closest to `decoded` (mean absolute error)."""
    errors = np.abs(encoded.astype(np.int16) - decoded.astype(np.int16)).mean(axis=(1, 2, 3))
    return int(errors.argmin())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    # Default libx264 settings use B-frames, so decode order differs from display order.
    frames = synthetic_frames(40)
    path = encode(tmp_path_factory.mktemp("clip") / "clip.mp4", frames)
    return path, frames


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_mp4_frames_match_encoded(clip: tuple[Path, np.ndarray]) -> None:
    path, encoded = clip
    with VideoFileSource(path) as source:
        assert (source.num_frames, source.height, source.width) == (40, HEIGHT, WIDTH)
        assert source.fps == 25.0
        decoded = list(source)
        assert source.seek_count == 1  # sequential reading never repositions the decoder
    assert len(decoded) == 40
    for i, frame in enumerate(decoded):
        assert frame.shape == (HEIGHT, WIDTH, 3) and frame.dtype == np.uint8
        assert mean_abs_error(frame, encoded[i]) < 4.0  # lossy, but close
        assert identity(frame, encoded) == i


def test_random_and_backward_access_equal_sequential(clip: tuple[Path, np.ndarray]) -> None:
    path, _ = clip
    with VideoFileSource(path) as source:
        sequential = [frame.copy() for frame in source]
    with VideoFileSource(path, cache_frames=3) as source:
        for i in reversed(range(40)):  # backward propagation order
            np.testing.assert_array_equal(source.get(i), sequential[i])
        backward_seeks = source.seek_count
        rng = np.random.default_rng(0)
        for i in rng.integers(0, 40, size=30):
            np.testing.assert_array_equal(source.get(int(i)), sequential[i])
        assert len(source.cache) <= 3
    # Stepping back must re-seek at least once per GOP (keyframes every <= 10 frames), but the
    # cache means far fewer seeks than frames.
    assert 4 <= backward_seeks < 40


def test_far_jump_seeks_instead_of_decoding_everything(clip: tuple[Path, np.ndarray]) -> None:
    path, encoded = clip
    with VideoFileSource(path) as source:
        source.get(0)
        seeks = source.seek_count
        assert identity(source.get(35), encoded) == 35
        assert source.seek_count == seeks + 1  # jumped to the last keyframe before 35
        assert identity(source.get(36), encoded) == 36
        assert source.seek_count == seeks + 1  # just ahead: continue the decoder


def test_memory_stays_bounded_on_long_video(tmp_path: Path) -> None:
    frames = np.zeros((2000, 64, 64, 3), np.uint8)
    frames[:, :, :, 0] = (np.arange(2000) % 256)[:, None, None]
    path = encode(tmp_path / "long.mp4", frames, gop=50, options={"preset": "ultrafast"})
    with VideoFileSource(path, cache_frames=8) as source:
        assert source.num_frames == 2000
        largest = 0
        for i, frame in enumerate(source):
            largest = max(largest, len(source.cache))
            if i % 250 == 0:
                assert abs(int(frame[..., 0].mean()) - i % 256) <= 3
        assert largest <= 8
        assert source.seek_count == 1


def test_fps_and_rotation(tmp_path: Path) -> None:
    frames = synthetic_frames(6)
    frames[:, :4, :4] = (255, 0, 0)  # a red marker in the top-left corner
    path = encode(tmp_path / "ntsc.mp4", frames, fps=Fraction(30000, 1001))
    with VideoFileSource(path) as source:
        assert abs(source.fps - 29.97003) < 1e-4
    rotated = encode(tmp_path / "rot.mp4", frames, rotation=90)
    with VideoFileSource(rotated) as source:
        # +90 degrees means the picture is shown turned counter-clockwise: the top-left corner
        # ends up bottom-left and width/height swap.
        assert (source.height, source.width) == (WIDTH, HEIGHT)
        frame = source.get(0)
        assert frame.shape == (WIDTH, HEIGHT, 3)
        assert frame[-2, 1, 0] > 200 and frame[-2, 1, 1] < 60
        np.testing.assert_allclose(
            np.rot90(frame, -1).astype(float), frames[0].astype(float), atol=60
        )


def test_index_out_of_range_names_valid_range(clip: tuple[Path, np.ndarray]) -> None:
    path, _ = clip
    with VideoFileSource(path) as source:
        with pytest.raises(FrameIndexError, match=r"frame 40 .*valid frames are 0\.\.39"):
            source.get(40)
        with pytest.raises(IndexError):
            source.get(-1)


def test_corrupt_and_non_video_files(tmp_path: Path) -> None:
    corrupt = tmp_path / "random.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    with pytest.raises(InvalidInputError, match="random.mp4"):
        VideoFileSource(corrupt)
    text = tmp_path / "notes.txt"
    text.write_text("not a video at all")
    with pytest.raises(InvalidInputError, match="notes.txt"):
        open_frames(text)
    audio_only = tmp_path / "tone.m4a"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = np.zeros((1, 1024), np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(InvalidInputError, match="no video stream"):
        VideoFileSource(audio_only)


def test_truncated_mp4(tmp_path: Path, clip: tuple[Path, np.ndarray]) -> None:
    """Moov-at-end files (the muxer default) cut in half cannot be opened: InvalidInputError.
    Fast-start files (index first) cut in half are refused at open too (the documented choice,
    shared by CLI, API and server), naming how many frames the data still holds."""
    path, encoded = clip
    half = tmp_path / "half.mp4"
    half.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InvalidInputError, match="half.mp4"):
        VideoFileSource(half)

    faststart = encode(tmp_path / "fast.mp4", encoded, container_options={"movflags": "faststart"})
    cut = tmp_path / "fast_half.mp4"
    cut.write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    with av.open(str(cut)) as container:  # the packets whose data survived, per the demuxer
        whole = sum(1 for p in container.demux(video=0) if p.size and not p.is_corrupt)
    assert 0 < whole < len(encoded)
    with pytest.raises(InvalidInputError, match=f"truncated.* {whole} frames of the 40") as error:
        VideoFileSource(cut)
    assert "ffmpeg -i" in str(error.value)


def write_images(folder: Path, names: list[str], frames: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(names, frames, strict=True):
        Image.fromarray(frame).save(folder / name)


def test_folder_natural_sort(tmp_path: Path) -> None:
    frames = synthetic_frames(12)
    names = [f"frame{i}.png" for i in range(12)]  # frame10 must come after frame9
    write_images(tmp_path / "seq", names, frames)
    (tmp_path / "seq" / "notes.txt").write_text("ignored")
    assert sorted(names, key=natural_key)[:3] == ["frame0.png", "frame1.png", "frame2.png"]
    source = open_frames(tmp_path / "seq", fps=12)
    assert isinstance(source, FolderSource)
    assert (source.num_frames, source.fps, source.height, source.width) == (12, 12.0, 48, 64)
    for i, frame in enumerate(source):
        np.testing.assert_array_equal(frame, frames[i])  # PNG is lossless
    np.testing.assert_array_equal(source.get(10), frames[10])


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="no .jpg"):
        FolderSource(tmp_path / "empty")
    frames = synthetic_frames(3)
    write_images(tmp_path / "mixed", ["a1.jpg", "a2.jpg"], frames[:2])
    Image.fromarray(frames[2][:20]).save(tmp_path / "mixed" / "a3.jpg")
    with pytest.raises(InvalidInputError, match="'a3.jpg' is 64x20"):
        FolderSource(tmp_path / "mixed")
    with pytest.raises(InvalidInputError, match="does not exist"):
        open_frames(tmp_path / "missing.mp4")


def test_array_source() -> None:
    frames = synthetic_frames(5)
    for given in (frames, list(frames)):
        source = open_frames(given, fps=10)
        assert isinstance(source, ArraySource) and isinstance(source, FrameSource)
        assert (len(source), source.fps, source.height, source.width) == (5, 10.0, 48, 64)
        np.testing.assert_array_equal(np.stack(list(source)), frames)
        assert open_frames(source) is source
    with pytest.raises(InvalidInputError, match="uint8"):
        ArraySource(frames.astype(np.float32))
    with pytest.raises(InvalidInputError, match="differs from the first frame"):
        ArraySource([frames[0], frames[1][:10]])
    with pytest.raises(InvalidInputError, match="empty"):
        ArraySource([])


def test_live_source_window() -> None:
    source = LiveSource(fps=15, window=4)
    assert source.num_frames is None
    with pytest.raises(InvalidInputError, match="add_frame"):
        _ = source.height
    frames = synthetic_frames(10)
    indices = [source.add_frame(frame) for frame in frames]
    assert indices == list(range(10))
    assert source.num_frames is None and len(source) == 10
    assert (source.height, source.width) == (48, 64)
    np.testing.assert_array_equal(source.get(9), frames[9])
    np.testing.assert_array_equal(source.get(6), frames[6])
    with pytest.raises(FrameIndexError, match=r"evicted.*frames 6\.\.9"):
        source.get(5)
    with pytest.raises(FrameIndexError, match="out of range"):
        source.get(10)
    assert len(list(source)) == 4
    with pytest.raises(InvalidInputError, match="differs"):
        source.add_frame(frames[0][:10])
    source.close()
    assert source.num_frames == 10
    with pytest.raises(InvalidInputError, match="closed"):
        source.add_frame(frames[0])


def test_video_file_module_does_not_import_frames() -> None:
    """No import cycle (issue 16): video_file and frame_index build on frame_source only;
    frames imports them and re-exports VideoFileSource."""
    import ast

    import masklet.video.frame_index as frame_index
    import masklet.video.frame_source as frame_source
    import masklet.video.video_file as video_file

    for module in (video_file, frame_index, frame_source):
        tree = ast.parse(Path(str(module.__file__)).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "masklet.video.frames" not in imported, module.__name__
