"""Every way of handing frames to the video predictor gives the same masks: an MP4, its decoded
frames as a PNG folder, a list of arrays, one array, and a live session fed frame by frame.
Broken sources fail clearly at `init_state`."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from masklet.errors import InvalidInputError
from masklet.modeling.sam2 import build_model
from masklet.video.predictor import VideoPredictor
from masklet.video.session import VideoSession
from tests.media import write_square_clip
from tests.parity.reference import small_config

W, H, N = 64, 48, 4
OBJECT_SCORE_BIAS = 10.0
CLICK = np.array([[22.0, 20.0]], np.float32)  # on the moving square of frame 0


@pytest.fixture(scope="module")
def predictor() -> VideoPredictor:
    torch.manual_seed(0)
    model = build_model(small_config("sam2.1_hiera_tiny", image_size=128)).eval()
    # Random weights mostly say "no object", which blanks every mask; a large object-score bias
    # makes the objects visible so the comparison is over real masks.
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(OBJECT_SCORE_BIAS)
    return VideoPredictor(model)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return write_square_clip(
        path, N, (W, H), fps=25, step=3, x0=12, background=40, color=(230, 190, 30)
    )


@pytest.fixture(scope="module")
def decoded(clip: Path) -> list[np.ndarray]:
    with av.open(str(clip)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def track(predictor: VideoPredictor, session: VideoSession) -> list[torch.Tensor]:
    """One click on frame 0, tracked forward: logits [1, 1, H, W] per frame."""
    predictor.add_new_points_or_box(session, 0, 1, CLICK, np.array([1]))
    return [logits.clone() for _, _, logits in predictor.propagate_in_video(session)]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 0.0) -> None:
    """Identical masks; logits equal bit for bit unless `atol` is given."""
    assert len(a) == len(b) == N
    for x, y in zip(a, b):
        assert x.shape == (1, 1, H, W)
        assert torch.equal(x > 0, y > 0)
        torch.testing.assert_close(x, y, rtol=0, atol=atol)


def test_all_sources_give_the_same_masks(
    predictor: VideoPredictor, clip: Path, decoded: list[np.ndarray], tmp_path: Path
) -> None:
    assert len(decoded) == N and decoded[0].shape == (H, W, 3)
    reference = track(predictor, predictor.init_state(decoded))  # a list of arrays
    for x in reference:  # real masks to compare: neither empty nor full
        assert 0 < int((x > 0).sum()) < H * W

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(decoded):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")  # PNG: lossless
    assert_same(track(predictor, predictor.init_state(folder)), reference)
    assert_same(track(predictor, predictor.init_state(np.stack(decoded))), reference)
    assert_same(track(predictor, predictor.init_state(clip)), reference)  # MP4 decoded lazily

    ended = predictor.init_state(None)
    for frame in decoded:
        ended.add_frame(frame)
    ended.source.close()  # the stream ended: its length is known, as for a file
    assert_same(track(predictor, ended), reference)

    live = predictor.init_state(None)
    for frame in decoded:
        live.add_frame(frame)
    # While a stream is open its length is unknown, so object-pointer distances are scaled by
    # max_obj_ptrs_in_encoder (16) instead of min(num_frames, 16): videos shorter than 16
    # frames see slightly different logits, the masks stay the same.
    assert_same(track(predictor, live), reference, atol=1e-3)


def test_broken_sources_fail_at_init_state(predictor: VideoPredictor, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(InvalidInputError, match="corrupt.mp4"):
        predictor.init_state(corrupt)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="no .*images"):
        predictor.init_state(empty)
    with pytest.raises(InvalidInputError, match="does not exist"):
        predictor.init_state(tmp_path / "missing.mp4")
