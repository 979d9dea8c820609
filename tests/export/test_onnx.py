"""ONNX export: onnxruntime (fp32) gives what PyTorch (fp32) gives, on perturbed weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from masklet.modeling.sam2 import SAM2Model
from tests.parity.reference import assert_close

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

ATOL = 1e-4


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _images(batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(batch)
    return torch.randn(batch, 3, 256, 256, generator=g)


@pytest.mark.parametrize("batch", [1, 2])  # the batch axis is dynamic
def test_image_encoder_matches_pytorch(exported: tuple[SAM2Model, Path], batch: int) -> None:
    model, out = exported
    images = _images(batch)
    got = dict(
        zip(
            ["image_embed", "high_res_0", "high_res_1", "vision_features", "vision_pos"],
            _session(out / "image_encoder.onnx").run(None, {"images": images.numpy()}),
            strict=True,
        )
    )
    with torch.no_grad():  # what the image predictor and the video loop compute
        features = model.forward_image(images)
        embed, high_res = model.image_embeddings(features)
    expected = {"image_embed": embed, "high_res_0": high_res[0], "high_res_1": high_res[1]}
    h, w = features.feat_sizes[-1]
    expected["vision_features"] = (
        features.vision_feats[-1].permute(1, 2, 0).reshape(batch, -1, h, w)
    )
    for name, tensor in expected.items():
        assert tensor.std() > 0.1, f"{name} is nearly constant"
        assert_close(torch.from_numpy(got[name]), tensor, atol=ATOL)
    # two different images give different embeddings (the batch is not collapsed)
    if batch == 2:
        assert (embed[0] - embed[1]).abs().max() > 0.1


def _prompts(model: SAM2Model, batch: int, points: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(10 * batch + points)
    return {
        "point_coords": torch.rand(batch, points, 2, generator=g) * model.image_size,
        "point_labels": torch.randint(0, 2, (batch, points), generator=g, dtype=torch.int32),
        "mask_input": torch.randn(batch, 1, *model.sam_prompt_encoder.mask_input_size, generator=g),
    }


@pytest.mark.parametrize(("batch", "points", "with_mask"), [(1, 1, False), (2, 3, True)])
def test_prompt_decoder_matches_pytorch(
    exported: tuple[SAM2Model, Path], batch: int, points: int, with_mask: bool
) -> None:
    model, out = exported
    with torch.no_grad():
        embed, high_res = model.image_embeddings(model.forward_image(_images(batch)))
    prompts = _prompts(model, batch, points)
    feeds = {
        "image_embed": embed, "high_res_0": high_res[0], "high_res_1": high_res[1], **prompts,
        "has_mask_input": torch.tensor([1.0 if with_mask else 0.0]),
    }  # fmt: skip
    masks, ious, scores, _ = _session(out / "prompt_decoder.onnx").run(
        None, {k: v.numpy() for k, v in feeds.items()}
    )
    with torch.no_grad():  # the modules as the image predictor calls them
        encoder = model.sam_prompt_encoder
        sparse, dense = encoder(
            points=(prompts["point_coords"], prompts["point_labels"]),
            boxes=None,
            masks=prompts["mask_input"] if with_mask else None,
        )
        decoded = model.sam_mask_decoder(
            image_embeddings=embed,
            image_pe=encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=False,
            high_res_features=high_res,
        )
    expected_masks = decoded.masks  # [B, 3, 4h, 4w]: the multimask outputs, tokens 1..3
    positive = (expected_masks > 0).float().mean()
    assert 0.01 < positive < 0.99, f"degenerate masks: {positive:.3f} of pixels positive"
    assert (expected_masks[:, 0] > 0).ne(expected_masks[:, 1] > 0).any()  # tokens differ
    assert_close(torch.from_numpy(masks[:, 1:]), expected_masks, atol=ATOL)
    assert_close(torch.from_numpy(ious[:, 1:]), decoded.ious, atol=ATOL)
    assert_close(torch.from_numpy(scores), decoded.object_score_logits, atol=ATOL)
    assert np.ptp(ious) > 1e-3  # the IoU head tells the masks apart


@pytest.mark.parametrize(("batch", "points"), [(1, 0), (3, 2)])  # 0 points: the padding token
def test_mask_decoder_and_object_pointer_match_pytorch(
    exported: tuple[SAM2Model, Path], batch: int, points: int
) -> None:
    """The decoder alone on PyTorch's prompt embeddings, then the pointer projection of every
    mask token: what the onnxruntime backend runs for each click and tracked frame."""
    model, out = exported
    with torch.no_grad():
        embed, high_res = model.image_embeddings(model.forward_image(_images(batch)))
        prompts = _prompts(model, batch, points)
        encoder = model.sam_prompt_encoder
        sparse, dense = encoder(
            points=(prompts["point_coords"], prompts["point_labels"]),
            boxes=None,
            masks=prompts["mask_input"],
        )
        expected = model.sam_mask_decoder.predict_all(
            embed, encoder.get_dense_pe(), sparse, dense, repeat_image=False,
            high_res_features=high_res,
        )  # fmt: skip
        tokens = expected.tokens.flatten(0, 1)  # [B, T, C] -> [B * T, C]
        pointers = model.obj_ptr_proj(tokens)
    feeds = {
        "image_embed": embed, "image_pe": encoder.get_dense_pe(), "sparse_embeddings": sparse,
        "dense_embeddings": dense, "high_res_0": high_res[0], "high_res_1": high_res[1],
    }  # fmt: skip
    masks, ious, got_tokens, scores = _session(out / "mask_decoder.onnx").run(
        None, {k: v.numpy() for k, v in feeds.items()}
    )
    (got_pointers,) = _session(out / "object_pointer.onnx").run(
        None, {"mask_token": tokens.numpy()}
    )
    positive = (expected.masks > 0).float().mean()
    assert 0.01 < positive < 0.99, f"degenerate masks: {positive:.3f} of pixels positive"
    assert pointers.std() > 0.1 and (pointers[0] - pointers[1]).abs().max() > 1e-2
    assert_close(torch.from_numpy(masks), expected.masks, atol=ATOL)
    assert_close(torch.from_numpy(ious), expected.ious, atol=ATOL)
    assert_close(torch.from_numpy(got_tokens), expected.tokens, atol=ATOL)
    assert_close(torch.from_numpy(scores), expected.object_score_logits, atol=ATOL)
    assert_close(torch.from_numpy(got_pointers), pointers, atol=ATOL)


def test_manifest_names_every_input_and_output(exported: tuple[SAM2Model, Path]) -> None:
    model, out = exported
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_config"]["image_size"] == model.image_size == 256
    for name, part in manifest["parts"].items():
        session = _session(out / part["file"])
        assert [i["name"] for i in part["inputs"]] == [i.name for i in session.get_inputs()]
        assert [o["name"] for o in part["outputs"]] == [o.name for o in session.get_outputs()]
        onnx.checker.check_model(str(out / part["file"]))
        flags = {"has_mask_input", "image_pe"}
        assert all("batch" in i["shape"] for i in part["inputs"] if i["name"] not in flags), name
    decoder_inputs = {i["name"]: i for i in manifest["parts"]["prompt_decoder"]["inputs"]}
    assert decoder_inputs["point_coords"]["shape"] == ["batch", "num_points", 2]
