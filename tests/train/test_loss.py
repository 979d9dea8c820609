import math

import pytest
import torch

from masklet.train.loss import LossWeights, dice_loss, sam_loss, sigmoid_focal_loss

LN2 = math.log(2.0)


def test_hand_computed_terms_on_a_two_pixel_mask() -> None:
    # logits 0 -> p = 0.5 everywhere; target [1, 0]
    logits = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[[True, False]]]])
    terms = sam_loss(
        logits, torch.tensor([[0.7]]), torch.zeros(1, 1), target, weights=LossWeights()
    )
    # focal per pixel: alpha_t * ln2 * (1 - 0.5)^2 with alpha_t 0.25 (pos) and 0.75 (neg)
    focal = (0.25 * LN2 * 0.25 + 0.75 * LN2 * 0.25) / 2
    dice = 1 - (2 * 0.5 + 1) / (1.0 + 1.0 + 1)  # soft intersection 0.5, sums 1 and 1
    iou = abs(0.7 - 0.0)  # no pixel above 0 -> actual IoU 0, L1 loss
    obj = LN2  # BCE of logit 0 against "present"
    assert float(terms.focal) == pytest.approx(focal, rel=1e-6)
    assert float(terms.dice) == pytest.approx(dice, rel=1e-6)
    assert float(terms.iou) == pytest.approx(iou, rel=1e-6)
    assert float(terms.object_score) == pytest.approx(obj, rel=1e-6)
    assert float(terms.total) == pytest.approx(20 * focal + dice + iou + obj, rel=1e-6)


def test_mse_iou_and_custom_weights() -> None:
    logits = torch.tensor([[[[5.0, -5.0]]]])
    target = torch.tensor([[[[True, False]]]])
    w = LossWeights(focal=0.0, dice=0.0, iou=2.0, object_score=0.0, iou_use_l1=False)
    terms = sam_loss(logits, torch.tensor([[0.5]]), torch.zeros(1, 1), target, weights=w)
    assert float(terms.iou) == pytest.approx(0.25)  # actual IoU 1, (0.5 - 1)^2
    assert float(terms.total) == pytest.approx(0.5)


def test_best_candidate_carries_the_mask_loss() -> None:
    target = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    target[..., :2, :] = True
    good = torch.where(target, 8.0, -8.0)[:, 0]  # [1, 4, 4]
    bad = -good
    multi = torch.stack([bad, good, torch.zeros_like(good)], dim=1)  # [1, 3, 4, 4]
    multi.requires_grad_(True)
    terms = sam_loss(multi, torch.full((1, 3), 0.5), torch.ones(1, 1), target)
    single = sam_loss(good[:, None], torch.full((1, 1), 0.5), torch.ones(1, 1), target)
    assert terms.as_floats()["focal"] == pytest.approx(single.as_floats()["focal"])
    assert terms.as_floats()["dice"] == pytest.approx(single.as_floats()["dice"])
    (20 * terms.focal + terms.dice).backward()
    assert multi.grad is not None
    assert multi.grad[:, 1].abs().sum() > 0  # the best candidate learns
    assert multi.grad[:, 0].abs().sum() == 0 and multi.grad[:, 2].abs().sum() == 0


def test_iou_supervises_every_candidate_or_only_the_best() -> None:
    target = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    multi = torch.stack([torch.full((2, 2), -5.0), torch.full((2, 2), 5.0)])[None]  # IoU 0, 1
    ious = torch.tensor([[0.0, 0.0]])
    all_iou = sam_loss(multi, ious, torch.ones(1, 1), target)
    best_only = sam_loss(
        multi, ious, torch.ones(1, 1), target, weights=LossWeights(supervise_all_iou=False)
    )
    assert float(all_iou.iou) == pytest.approx(0.5)  # mean(|0 - 0|, |0 - 1|)
    assert float(best_only.iou) == pytest.approx(1.0)  # best is candidate 1 (IoU 1)


def test_absent_object_counts_only_the_object_score() -> None:
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    scores = torch.tensor([[2.0], [-1.0]], requires_grad=True)
    target = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    terms = sam_loss(logits, torch.rand(2, 3), scores, target)
    values = terms.as_floats()
    assert values["focal"] == values["dice"] == values["iou"] == 0.0
    # BCE against "absent", averaged over the 2 objects
    expected = (math.log1p(math.exp(2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert values["object_score"] == pytest.approx(expected, rel=1e-6)
    terms.total.backward()
    assert logits.grad is not None and logits.grad.abs().sum() == 0
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_mixed_batch_averages_over_all_objects_and_gradients_flow() -> None:
    target = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    target[0, 0, 1:4, 1:4] = True  # object 0 present, object 1 absent
    logits = torch.randn(2, 1, 6, 6, requires_grad=True)
    ious = torch.rand(2, 1, requires_grad=True)
    scores = torch.randn(2, 1, requires_grad=True)
    terms = sam_loss(logits, ious, scores, target)
    alone = sam_loss(logits[:1], ious[:1], scores[:1], target[:1])
    assert terms.as_floats()["focal"] == pytest.approx(alone.as_floats()["focal"] / 2, rel=1e-6)
    terms.total.backward()
    for t in (logits, ious, scores):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    assert logits.grad[1].abs().sum() == 0  # the absent object's mask gets no gradient


def test_terms_add_up_and_shapes_are_checked() -> None:
    logits, target = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2, dtype=torch.bool)
    one = sam_loss(logits, torch.zeros(1, 1), torch.zeros(1, 1), target)
    two = one + one
    assert float(two.total) == pytest.approx(2 * float(one.total))
    assert two.as_floats()["dice"] == pytest.approx(2 * float(one.dice))
    with pytest.raises(ValueError, match="target"):
        sam_loss(logits, torch.zeros(1, 1), torch.zeros(1, 1), target[..., :1])


def test_focal_and_dice_reduce_to_candidates() -> None:
    logits = torch.randn(3, 2, 5, 5)
    target = torch.rand(3, 2, 5, 5) > 0.5
    assert sigmoid_focal_loss(logits, target.float()).shape == (3, 2)
    perfect = torch.where(target, 30.0, -30.0)
    assert dice_loss(perfect, target.float()).max() < 1e-6


def test_objects_called_hidden_are_counted_with_their_no_object_loss() -> None:
    """Three objects: present and scored visible, present but called hidden (SAM 2 then
    outputs -1024 logits), absent and called hidden. Only the second counts as called hidden;
    its focal loss is the huge kind the progress bar must explain (in the model the -1024 is
    a constant put in place of the logits, so none of it reaches the weights)."""
    target = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    target[:2, :, :2, :] = True
    logits = torch.stack([torch.where(target[0], 8.0, -8.0), torch.full((1, 4, 4), -1024.0),
                          torch.full((1, 4, 4), -1024.0)])  # fmt: skip
    scores = torch.tensor([[3.0], [-2.0], [-4.0]])
    terms = sam_loss(logits, torch.ones(3, 1), scores, target)
    assert int(terms.present) == 2 and int(terms.called_hidden) == 1
    # focal 0.25 * 1024 on the 8 object pixels of 16, over 3 objects (the others ~0)
    assert float(terms.focal) == pytest.approx(0.25 * 1024 * 8 / 16 / 3, rel=1e-3)
    both = terms + terms
    assert int(both.present) == 4 and int(both.called_hidden) == 2


def _textbook_focal(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float):  # type: ignore[no-untyped-def]
    """The focal loss as SAM 2 writes it (autograd through every step), [B, M]."""
    prob = logits.sigmoid()
    ce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(2).mean(-1)


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.8, 3.0)])
def test_focal_loss_values_and_gradients_match_the_textbook_formula(
    alpha: float, gamma: float
) -> None:
    """The fused focal loss (gradient computed in its forward pass) against autograd through
    SAM 2's formula, in float64, with saturated logits (+-1024: SAM 2's no-object value) and
    a [B, 1, H, W] target broadcast over the candidates."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 3, 6, 5, generator=g, dtype=torch.float64) * 6
    logits[0, 0, 0, :4] = torch.tensor([-1024.0, 1024.0, 40.0, -40.0])
    target = torch.rand(3, 1, 6, 5, generator=g) > 0.5
    target[0, 0, 0, :4] = torch.tensor([True, False, False, True])
    weights = torch.randn(3, 3, generator=g, dtype=torch.float64)  # an arbitrary upstream grad
    fused_in = logits.clone().requires_grad_()
    plain_in = logits.clone().requires_grad_()
    fused = sigmoid_focal_loss(fused_in, target, alpha, gamma)
    plain = _textbook_focal(plain_in, target.double().expand_as(plain_in), alpha, gamma)
    (fused * weights).sum().backward()
    (plain * weights).sum().backward()
    assert fused.shape == (3, 3)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    assert fused_in.grad is not None and plain_in.grad is not None
    torch.testing.assert_close(fused_in.grad, plain_in.grad, rtol=1e-10, atol=1e-15)
    check = logits[:1, :, :3, :3].clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: sigmoid_focal_loss(x, target[:1, :, :3, :3], alpha, gamma), (check,)
    )
    with torch.no_grad():  # no gradient wanted: same values
        torch.testing.assert_close(sigmoid_focal_loss(logits, target, alpha, gamma), plain.detach())
