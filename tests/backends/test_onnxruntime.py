"""The onnxruntime backend (fp32) gives what PyTorch (fp32) gives, through the unchanged
image and video predictors, on perturbed weights; and its errors name the fix."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.backends.onnxruntime import OnnxImageEncoder, OnnxMemoryAttention
from masklet.checkpoints import load_model
from masklet.errors import CheckpointError, InvalidInputError
from masklet.image_predictor import ImagePredictor
from masklet.modeling.sam2 import SAM2Model
from masklet.video.predictor import VideoPredictor
from tests.nondegenerate import assert_informative
from tests.parity.reference import assert_close, small_config
from tests.parity.test_video_predictor_parity import NUM_FRAMES, make_frames

pytest.importorskip("onnxruntime")

ATOL = 1e-4
Exported = tuple[SAM2Model, Path]


@pytest.fixture(scope="module")
def runtime_model(exported_present: Exported) -> SAM2Model:
    return load_model(exported_present[1])  # the folder alone says "onnxruntime"


def test_load_model_swaps_only_the_heavy_modules(
    exported_present: Exported, runtime_model: SAM2Model
) -> None:
    assert isinstance(runtime_model.image_encoder, OnnxImageEncoder)
    assert isinstance(runtime_model.memory_attention, OnnxMemoryAttention)
    model = exported_present[0]
    # what stays in PyTorch holds the exported model's tensors exactly
    mine = runtime_model.state_dict()
    assert mine and all(torch.equal(t, model.state_dict()[k]) for k, t in mine.items())
    assert "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix" in mine
    assert not any(k.startswith("image_encoder.") for k in mine)


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 80, (120, 160, 3), dtype=np.uint8)
    img[30:80, 40:100] = (220, 60, 50)
    return img


def test_image_predictions_match_pytorch(
    exported_present: Exported, runtime_model: SAM2Model
) -> None:
    torch_predictor = ImagePredictor(exported_present[0])
    ort_predictor = ImagePredictor(runtime_model)
    for predictor in (torch_predictor, ort_predictor):
        predictor.set_image(_image())
    prompts = [
        {"point_coords": [[60, 50]], "point_labels": [1], "multimask_output": True},
        {"point_coords": [[60, 50], [10, 10]], "point_labels": [1, 0], "multimask_output": False},
        {"box": [35, 25, 105, 85], "multimask_output": False},
        {"point_coords": [[[60, 50]], [[130, 100]]], "point_labels": [[1], [1]]},  # 2 prompts
    ]
    for kwargs in prompts:
        want = torch_predictor.predict_full(**kwargs, return_logits=True)
        got = ort_predictor.predict_full(**kwargs, return_logits=True)
        positive = (want.masks > 0).float().mean(dim=(-1, -2))  # [B, M]
        assert ((positive > 0.005) & (positive < 0.995)).all(), f"degenerate: {kwargs} {positive}"
        assert_close(got.masks, want.masks, atol=ATOL)
        assert_close(got.low_res_logits, want.low_res_logits, atol=ATOL)
        assert_close(got.ious, want.ious, atol=ATOL)
        assert_close(got.object_scores, want.object_scores, atol=ATOL)
        # a mask prompt: the low-res logits of this answer, fed back
        mask_input = want.low_res_logits[:1, :1].numpy()[0]
        again = [
            p.predict_full(point_coords=[[62, 52]], point_labels=[1], mask_input=mask_input,
                           multimask_output=False, return_logits=True)
            for p in (torch_predictor, ort_predictor)
        ]  # fmt: skip
        assert_close(again[1].masks, again[0].masks, atol=ATOL)


class Frames:
    """Per-call comparison of two predictors' outputs, keeping the worst difference."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.outputs: dict[int, dict[int, torch.Tensor]] = {}

    def same(self, a, b) -> None:  # type: ignore[no-untyped-def]
        (fa, ids_a, masks_a), (fb, ids_b, masks_b) = a, b
        assert fa == fb and list(ids_a) == list(ids_b)
        diff = float((masks_a.float() - masks_b.float()).abs().max())
        self.worst = max(self.worst, diff)
        assert diff <= ATOL, f"frame {fa}: max abs diff {diff:.3g}"
        self.outputs[fa] = {obj: m for obj, m in zip(ids_a, masks_a, strict=True)}

    def propagate(self, ours, s_ours, other, s_other, **kw) -> None:  # type: ignore[no-untyped-def]
        a = list(ours.propagate_in_video(s_ours, **kw))
        b = list(other.propagate_in_video(s_other, **kw))
        assert [x[0] for x in a] == [x[0] for x in b] and a
        for x, y in zip(a, b, strict=True):
            self.same(x, y)


def test_video_session_matches_pytorch(
    tmp_path: Path, exported_present: Exported, runtime_model: SAM2Model
) -> None:
    """The parity scenario of the video tests: several objects prompted on different frames
    (click, box, mask), a refining click, a correction, forward then backward, an object
    added late, one removed; every returned mask logit within 1e-4 per frame."""
    make_frames(tmp_path)
    pt = VideoPredictor(exported_present[0], fill_hole_area=0)
    ox = VideoPredictor(runtime_model, fill_hole_area=0)
    s_pt, s_ox = pt.init_state(tmp_path), ox.init_state(tmp_path)
    check = Frames()

    def both(method: str, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        check.same(
            getattr(pt, method)(s_pt, *args, **kwargs), getattr(ox, method)(s_ox, *args, **kwargs)
        )

    both("add_new_points_or_box", 0, 1, points=[[25, 35]], labels=[1])
    both("add_new_points_or_box", 0, 2, box=[78, 60, 112, 92])
    mask = np.zeros((96, 128), bool)
    mask[20:50, 22:52] = True
    both("add_new_mask", 3, 3, mask)
    both("add_new_points_or_box", 0, 1, points=[[60, 80]], labels=[0], clear_old_points=False)
    check.propagate(pt, s_pt, ox, s_ox)
    # objects 1-3 on every frame, non-empty and different from each other and over time
    assert_informative({f: check.outputs[f] for f in range(NUM_FRAMES)})

    both("add_new_points_or_box", 6, 1, points=[[40, 35]], labels=[1])  # a correction
    check.propagate(pt, s_pt, ox, s_ox)
    check.propagate(pt, s_pt, ox, s_ox, start_frame_idx=NUM_FRAMES - 1, reverse=True)
    both("add_new_points_or_box", 8, 4, points=[[95, 50]], labels=[1])
    check.propagate(pt, s_pt, ox, s_ox, start_frame_idx=2)
    check.propagate(pt, s_pt, ox, s_ox, start_frame_idx=9, reverse=True, max_frame_num_to_track=5)
    assert pt.remove_object(s_pt, 2)[0] == ox.remove_object(s_ox, 2)[0]
    check.propagate(pt, s_pt, ox, s_ox)
    assert_informative({f: check.outputs[f] for f in range(NUM_FRAMES)})
    print(f"onnxruntime vs PyTorch video: max abs diff {check.worst:.3g}")


def test_errors_name_the_fix(exported_present: Exported, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    folder = exported_present[1]
    with pytest.raises(InvalidInputError, match="--image-size 512"):
        load_model(folder, config=small_config(image_size=512))
    with pytest.raises(CheckpointError, match="masklet export onnx"):
        load_model(tmp_path, backend="onnxruntime")  # not an export
    with pytest.raises(CheckpointError, match="backend='onnxruntime'"):
        load_model(folder, backend="pytorch")
    with pytest.raises(InvalidInputError, match="unknown backend"):
        load_model(folder, backend="tensorrt")
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "memory_attention.onnx").unlink()
    with pytest.raises(CheckpointError, match="memory_attention.onnx"):
        load_model(broken)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(InvalidInputError, match="pip install onnxruntime"):
        load_model(folder)
