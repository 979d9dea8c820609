"""SAM 2's training loss for one prediction step: focal + dice + IoU regression + object score.

Follows the scheme of SAM 2's `MultiStepMultiMasksAndIous` (training/loss_fns.py) with the
weights of its released training config (focal 20, dice 1, IoU 1, object score 1):

- With several candidate masks (multimask output), the focal and dice losses back-propagate
  only through the candidate with the lowest weighted focal + dice loss, so the ambiguous
  candidates stay free to specialise (as in SAM).
- The IoU head regresses the actual IoU of each thresholded candidate with the target, with an
  L1 loss on every candidate (SAM 2.1's `iou_use_l1_loss` and `supervise_all_iou`).
- The object-score head is a binary classifier of "the object is visible" (plain BCE).
- When the object is absent (empty target), only the object-score loss counts: there is no
  mask to learn, the model must learn to say "absent".

Every term is averaged over the B objects of the batch, as SAM 2 divides by the object count.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from masklet.errors import InvalidInputError


def _weight(default: Any, help: str) -> Any:
    """A field with its help text (shown by `masklet train --help` as --loss-NAME)."""
    return field(default=default, metadata={"help": help})


# Dice smoothing term: keeps the loss finite (and 0 for two empty masks).
DICE_SMOOTH = 1.0


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms and the shape of the focal / IoU losses (SAM 2.1 defaults)."""

    focal: float = _weight(20.0, "weight of the focal loss on mask logits")
    dice: float = _weight(1.0, "weight of the dice loss on masks")
    iou: float = _weight(1.0, "weight of the loss on the predicted IoU")
    object_score: float = _weight(1.0, "weight of the object-score (visible or not) loss")
    focal_alpha: float = _weight(
        0.25, "weight of positive pixels (negatives get 1 - alpha; < 0: none)"
    )
    focal_gamma: float = _weight(2.0, "down-weights easy pixels by (1 - p_t) ** gamma")
    iou_use_l1: bool = _weight(
        True, "L1 (SAM 2.1) or, off, MSE (SAM 2.0) between predicted and actual IoU"
    )
    supervise_all_iou: bool = _weight(
        True, "IoU loss on every candidate mask, not only the best one"
    )

    def validate(self) -> None:
        """Raise InvalidInputError naming the first out-of-range weight."""
        for name in ("focal", "dice", "iou", "object_score", "focal_gamma"):
            if getattr(self, name) < 0:
                raise InvalidInputError(
                    f"loss.{name} must not be negative, got {getattr(self, name)}"
                )
        if self.focal_alpha > 1.0:
            raise InvalidInputError(
                f"loss.focal_alpha must be at most 1 (negative: no weighting), got "
                f"{self.focal_alpha}"
            )


@dataclass(frozen=True)
class LossTerms:
    """Unweighted loss terms (each a scalar tensor) and their weighted sum `total`.

    `present` counts the predictions whose target object is visible and `called_hidden` those
    of them whose object score said "hidden": their mask logits are SAM 2's no-object value
    (-1024), a constant put in their place, which the focal term scores at hundreds while no
    gradient reaches the weights through it: a jump of the total loss with many of these is
    the object head's doing, not divergence.
    """

    focal: Tensor
    dice: Tensor
    iou: Tensor
    object_score: Tensor
    total: Tensor
    present: Tensor
    called_hidden: Tensor

    def __add__(self, other: LossTerms) -> LossTerms:
        return LossTerms(
            focal=self.focal + other.focal,
            dice=self.dice + other.dice,
            iou=self.iou + other.iou,
            object_score=self.object_score + other.object_score,
            total=self.total + other.total,
            present=self.present + other.present,
            called_hidden=self.called_hidden + other.called_hidden,
        )

    def as_floats(self) -> dict[str, float]:
        """The terms as Python numbers, for logging."""
        names = ("focal", "dice", "iou", "object_score", "total")
        return {name: float(getattr(self, name).detach()) for name in names}


class _BinaryFocalLoss(torch.autograd.Function):
    """Per-pixel focal loss of binary targets with its gradient computed in the forward pass.

    With s = 2t - 1 (t in {0, 1}) and z = s * x, p_t = sigmoid(z), the loss is
    w_t * (1 - p_t)^g * softplus(-z) and its derivative in x is
    -s * w_t * (1 - p_t)^g * (g * p_t * softplus(-z) + 1 - p_t). Autograd through the
    textbook formula keeps about a dozen full-size intermediates of [B, M, H, W] for the
    backward pass and runs as many kernels again there; this keeps one (the gradient).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, logits: Tensor, target: Tensor, alpha: float, gamma: float
    ) -> Tensor:
        sign = target * 2 - 1  # [B, 1 or M, H, W]: +1 object, -1 background
        z = logits * sign
        p_t = torch.sigmoid(z)
        q = torch.sigmoid(-z)  # 1 - p_t, exact where p_t rounds to 1
        ce = F.logsigmoid(z).neg_()  # -log p_t = softplus(-z)
        mod = q * q if gamma == 2.0 else q.pow(gamma)
        weight = (
            torch.ones_like(target) if alpha < 0 else target * (2 * alpha - 1) + (1 - alpha)
        )  # alpha_t: alpha on object pixels, 1 - alpha on background
        loss = weight * mod * ce
        if ctx.needs_input_grad[0]:
            grad = (gamma * p_t * ce).add_(q).mul_(mod).mul_(weight * -sign)
            ctx.save_for_backward(grad)
        return loss.flatten(2).mean(-1)  # [B, M, H, W] -> [B, M]

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, None, None, None]:
        (grad,) = ctx.saved_tensors  # [B, M, H, W]
        pixels = grad.shape[-1] * grad.shape[-2]
        return grad * (grad_out / pixels)[..., None, None], None, None, None


def sigmoid_focal_loss(
    logits: Tensor, target: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Focal loss (Lin et al. 2017) averaged over pixels: [B, M, H, W] -> [B, M].

    `target` holds 0 / 1 (broadcastable to the logits, e.g. [B, 1, H, W]); `alpha` < 0 turns
    the class weighting off. Same values and gradients as SAM 2's `sigmoid_focal_loss`
    without its final division by the object count."""
    out: Tensor = _BinaryFocalLoss.apply(logits, target.to(logits.dtype), alpha, gamma)
    return out


def dice_loss(logits: Tensor, target: Tensor) -> Tensor:
    """1 - soft Dice coefficient of sigmoid(logits) with target: [B, M, H, W] -> [B, M]."""
    prob = logits.sigmoid().flatten(2)  # [B, M, HW]
    tgt = target.flatten(2)
    numerator = 2 * (prob * tgt).sum(-1)
    denominator = prob.sum(-1) + tgt.sum(-1)
    return 1 - (numerator + DICE_SMOOTH) / (denominator + DICE_SMOOTH)


def actual_ious(logits: Tensor, target: Tensor) -> Tensor:
    """IoU of the thresholded logits (> 0) with the target: [B, M, H, W] -> [B, M], no grad."""
    pred = logits.detach().flatten(2) > 0
    gt = target.flatten(2) > 0
    inter = (pred & gt).sum(-1).float()
    union = (pred | gt).sum(-1).float()
    return inter / union.clamp(min=1.0)


def sam_loss(
    multimask_logits: Tensor,
    ious_pred: Tensor,
    object_score_logits: Tensor,
    target: Tensor,
    *,
    weights: LossWeights | None = None,
) -> LossTerms:
    """Loss of one prediction step for a batch of B objects.

    Arguments:
      multimask_logits: [B, M, H, W] mask logits of the M candidates (M = 1 or 3).
      ious_pred: [B, M] predicted IoU of each candidate.
      object_score_logits: [B, 1] "object visible" logits.
      target: [B, 1, H, W] bool ground-truth masks at the logits' size.
      weights: loss weights; SAM 2.1's by default.
    """
    w = weights if weights is not None else LossWeights()
    if target.shape[-2:] != multimask_logits.shape[-2:] or target.shape[1] != 1:
        raise ValueError(
            f"expected target [B, 1, {multimask_logits.shape[-2]}, {multimask_logits.shape[-1]}]"
            f" to match the logits {tuple(multimask_logits.shape)}, got {tuple(target.shape)}"
        )
    b = multimask_logits.shape[0]
    tgt = target.to(multimask_logits.dtype).expand_as(multimask_logits)  # [B, M, H, W]
    present = tgt[:, 0].flatten(1).any(dim=1, keepdim=True).to(tgt.dtype)  # [B, 1]

    focal = sigmoid_focal_loss(multimask_logits, tgt, w.focal_alpha, w.focal_gamma)  # [B, M]
    dice = dice_loss(multimask_logits, tgt)  # [B, M]
    iou_target = actual_ious(multimask_logits, tgt)  # [B, M]
    iou_fn = F.l1_loss if w.iou_use_l1 else F.mse_loss
    iou = iou_fn(ious_pred.float(), iou_target, reduction="none")  # [B, M]

    # supervise only the best candidate's mask (lowest weighted focal + dice)
    best = torch.argmin(w.focal * focal + w.dice * dice, dim=-1)  # [B]
    rows = torch.arange(b, device=best.device)
    focal_best, dice_best = focal[rows, best], dice[rows, best]  # [B]
    iou_term = iou.mean(-1) if w.supervise_all_iou else iou[rows, best]  # [B]

    object_score = F.binary_cross_entropy_with_logits(
        object_score_logits.float(), present, reduction="none"
    )  # [B, 1]
    # mask and IoU terms only where the object is present; averaged over all B objects
    keep = present[:, 0]
    terms = (
        (focal_best * keep).sum() / b,
        (dice_best * keep).sum() / b,
        (iou_term * keep).sum() / b,
        object_score.sum() / b,
    )
    total = w.focal * terms[0] + w.dice * terms[1] + w.iou * terms[2] + w.object_score * terms[3]
    hidden = (object_score_logits.detach()[:, 0] < 0) & (keep > 0)  # [B]
    return LossTerms(*terms, total=total, present=keep.sum().detach(), called_hidden=hidden.sum())


def zero_terms(device: torch.device | str | None = None) -> LossTerms:
    """All terms zero: the start of a sum over frames and correction rounds."""
    zero = torch.zeros((), device=device)
    names = [f.name for f in dataclasses.fields(LossTerms)]
    return LossTerms(**dict.fromkeys(names, zero))
