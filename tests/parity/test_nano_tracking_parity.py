"""The bundled nano model tracks the demo clip exactly as the reference implementation does
with the same weights, including where it goes wrong: on the seed-0 demo clip object 2 leaves
the frame on frame 3 and its mask moves onto object 1 in both. This pins that failure on the
weights (see the model card's "Known failure"), not on masklet's memory selection, object-score
gating or pointer handling."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from masklet.checkpoints import load_model
from masklet.train.synthetic import click_point, demo_config, make_video
from masklet.video.predictor import VideoPredictor
from tests.parity.reference import reference_video_model

pytest.importorskip("sam2")

FRAMES = 10


class _DictEncoder(torch.nn.Module):
    """masklet's image encoder with the reference's dict output. The reference Hiera cannot
    run the nano trunk (a query-pooling block with global attention divides by zero in its
    window code); the trunk itself is covered by the image-encoder parity tests."""

    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, images: torch.Tensor) -> dict[str, object]:
        out = self.encoder(images)
        return {
            "vision_features": out.vision_features,
            "vision_pos_enc": list(out.vision_pos_enc),
            "backbone_fpn": list(out.backbone_fpn),
        }


def _reference_with_nano_weights(model: torch.nn.Module) -> torch.nn.Module:
    from sam2.modeling.sam.mask_decoder import MaskDecoder
    from sam2.modeling.sam.transformer import TwoWayTransformer

    cfg = model.config
    # the nano model is tiny 2.1 resized: the official tiny YAML with the nano's sizes
    ref = reference_video_model(dataclasses.replace(cfg, name="sam2.1_hiera_tiny"))
    md = cfg.mask_decoder  # the reference hard-codes the official decoder sizes: rebuild it
    ref.sam_mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(
            depth=2, embedding_dim=cfg.hidden_dim, mlp_dim=md.mlp_dim, num_heads=md.num_heads
        ),
        transformer_dim=cfg.hidden_dim,
        iou_head_depth=3,
        iou_head_hidden_dim=md.iou_head_hidden_dim,
        use_high_res_features=ref.use_high_res_features_in_sam,
        iou_prediction_use_sigmoid=ref.iou_prediction_use_sigmoid,
        pred_obj_scores=ref.pred_obj_scores,
        pred_obj_scores_mlp=ref.pred_obj_scores_mlp,
        use_multimask_token_for_obj_ptr=ref.use_multimask_token_for_obj_ptr,
        **(ref.sam_mask_decoder_extra_args or {}),
    )
    ref.image_encoder = _DictEncoder(model.image_encoder)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("image_encoder.")}
    result = ref.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith("image_encoder.") for k in result.missing_keys)
    return ref.eval()


def test_nano_demo_tracking_matches_the_reference(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = dataclasses.replace(demo_config(48, (256, 192)), use_photos=False)
    video = make_video(0, config)
    for t in range(FRAMES):
        Image.fromarray(video.frames[t]).save(tmp_path / f"{t:05d}.jpg", quality=95)
    model = load_model("masklet-nano-synthetic", device="cpu")
    ref = _reference_with_nano_weights(model)
    ours = VideoPredictor(model, fill_hole_area=0)  # the reference skips hole filling on CPU

    state = ours.init_state(tmp_path)
    with torch.inference_mode():
        ref_state = ref.init_state(str(tmp_path))
    for k, obj_id in enumerate(video.obj_ids):
        point = [list(click_point(video.masks[0, k]))]
        ours.add_new_points_or_box(state, frame_idx=0, obj_id=obj_id, points=point, labels=[1])
        with torch.inference_mode():
            ref.add_new_points_or_box(
                ref_state, frame_idx=0, obj_id=obj_id, points=point, labels=[1]
            )
    a = list(ours.propagate_in_video(state))
    with torch.inference_mode():
        b = list(ref.propagate_in_video(ref_state))

    assert [f for f, _, _ in a] == [f for f, _, _ in b] == list(range(FRAMES))
    for (frame, ids, ours_logits), (_, ref_ids, ref_logits) in zip(a, b):
        assert list(ids) == list(ref_ids) == video.obj_ids
        masks = (ours_logits[:, 0] > 0).numpy()
        assert masks.any(axis=(1, 2)).all(), f"frame {frame}: an empty mask"
        assert not np.array_equal(masks[0], masks[1]) or frame > 2  # distinct at the start
        assert torch.allclose(ours_logits, ref_logits.float(), atol=1e-3), f"frame {frame}"

    # the failure both share: object 2 is gone from frame 4, and its mask sits on object 1
    last = (a[-1][2][:, 0] > 0).numpy()
    assert video.masks[FRAMES - 1, 1].sum() == 0 and video.masks[FRAMES - 1, 0].sum() > 1000
    object_1 = video.masks[FRAMES - 1, 0]
    assert (last[1] & object_1).sum() > 0.8 * object_1.sum()
