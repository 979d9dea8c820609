"""SAM 2's training scheme in small: simulated prompts, corrective clicks, tracking with memory.

For every batch of clips: the image features of all frames are computed once; 1 to
`max_cond_frames` conditioning frames (always frame 0) get a simulated prompt (a click, a
noisy box, or the ground-truth mask), and frames prompted with clicks or boxes get
`num_correction_rounds` corrective clicks, each round re-running the SAM heads with the previous
logits as mask input; the other frames are then tracked with memory (`SAM2Model.track_step`).
The loss (`sam_loss`) is computed on the high-resolution multimask logits ([N, M, S, S], the
model's input size, as SAM 2 does) of every prediction step and summed over steps and frames.

Randomness is derived from (seed, step) for every step: the data order, the windows, the
objects, the prompts and dropout. A resumed run therefore replays exactly the batches and
prompts of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from masklet.checkpoints import checkpoint_info, download, read_state_dict, resolve_device
from masklet.config import ModelConfig
from masklet.errors import CheckpointError, InvalidInputError
from masklet.io.atomic import atomic_output
from masklet.modeling.outputs import FrameOutput, ImageFeatures
from masklet.modeling.sam2 import SAM2Model
from masklet.train.data import Clip, ClipDataset
from masklet.train.loss import LossTerms, LossWeights, sam_loss, zero_terms
from masklet.train.prompting import (
    Clicks,
    PromptKind,
    box_prompt,
    choose_prompt_kind,
    click_from_errors,
    first_click,
)
from masklet.transforms import MEAN, STD

LAST_CHECKPOINT = "last.pt"
FINAL_MODEL = "model.pt"
# Independent random streams derived from (seed, step, stream).
_STREAM_DATA, _STREAM_OBJECTS, _STREAM_PROMPTS, _STREAM_TORCH = range(4)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Defaults follow SAM 2.1's fine-tuning config
    (AdamW, weight decay 0.1, gradient clipping at 0.1, cosine decay to a tenth, 8 frames,
    1-2 conditioning frames, 7 correction clicks, P(click) = P(box) = 0.25, else mask)."""

    model: str | ModelConfig = "sam2.1_hiera_tiny"
    init_checkpoint: str | None = None  # file or official name; keys matching name+shape load
    steps: int = 1000
    batch_size: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.1
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # the cosine decays the learning rate to lr * min_lr_ratio
    grad_clip: float = 0.1  # max global gradient norm; 0 turns clipping off
    num_frames: int = 8  # frames per clip (clips are cut to this length)
    max_objects: int = 3  # objects per clip, sampled among those visible on frame 0
    max_cond_frames: int = 2  # frame 0 plus up to this many - 1 random frames get prompts
    num_correction_rounds: int = 7
    prob_point: float = 0.25
    prob_box: float = 0.25  # the mask prompt takes the rest (never on 1-frame clips)
    prob_center_click: float = 0.5  # click at the most interior point rather than uniformly
    prob_click_from_gt: float = 0.1  # correction sampled from the GT, not the errors (SAM 2)
    freeze_image_encoder: bool = False
    seed: int = 0
    out_dir: str = "runs/masklet-train"
    checkpoint_every: int = 100
    resume: bool = False  # continue from out_dir/last.pt
    device: str | None = None  # cuda, mps or cpu; None = the best available
    loss: LossWeights = field(default_factory=LossWeights)
    progress: bool = True

    def validate(self) -> None:
        """Raise InvalidInputError naming the first out-of-range setting."""
        positive = ("steps", "batch_size", "num_frames", "max_objects", "max_cond_frames")
        for name in (*positive, "checkpoint_every"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1, got {getattr(self, name)}")
        probs = ("prob_point", "prob_box", "prob_center_click", "prob_click_from_gt")
        for name in (*probs, "min_lr_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.prob_point + self.prob_box > 1.0:
            raise InvalidInputError(
                f"prob_point + prob_box must be at most 1 (the mask prompt takes the rest), got "
                f"{self.prob_point} + {self.prob_box}"
            )
        for name in ("lr", "weight_decay", "warmup_steps", "grad_clip", "num_correction_rounds"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"{name} must not be negative, got {getattr(self, name)}")

    def model_config(self) -> ModelConfig:
        return self.model if isinstance(self.model, ModelConfig) else ModelConfig.named(self.model)


@dataclass(frozen=True)
class LoadReport:
    """What `load_matching` took from a checkpoint: parameter names of each outcome."""

    loaded: list[str]
    missing: list[str]  # in the model, absent from the checkpoint: left as initialised
    mismatched: list[str]  # in both with different shapes: left as initialised
    unexpected: list[str]  # in the checkpoint only: ignored

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors"]
        for label, names in (
            ("kept initialised (not in checkpoint)", self.missing),
            ("kept initialised (shape differs)", self.mismatched),
            ("ignored (not in model)", self.unexpected),
        ):
            if names:
                shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                parts.append(f"{label}: {len(names)} ({shown})")
        return "; ".join(parts)


@dataclass
class TrainResult:
    """model: the trained model (train mode); losses: total loss of every step from step 0,
    including steps run before a resume; step: steps completed."""

    model: SAM2Model
    losses: list[float]
    step: int
    checkpoint: Path | None
    model_path: Path | None
    init_report: LoadReport | None


def load_matching(model: torch.nn.Module, state_dict: Mapping[str, Tensor]) -> LoadReport:
    """Copy every tensor whose name and shape match into `model` (e.g. a SAM 2.0 checkpoint
    into a 2.1 model, or a different image size); report the rest."""
    own = model.state_dict()
    matched = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ]
    if not matched:
        raise CheckpointError(
            "no tensor of the checkpoint matches the model by name and shape; pass a SAM 2 "
            "checkpoint in the official layout"
        )
    model.load_state_dict(matched, strict=False)
    return LoadReport(
        loaded=sorted(matched),
        missing=sorted(k for k in own if k not in state_dict),
        mismatched=sorted(mismatched),
        unexpected=sorted(k for k in state_dict if k not in own),
    )


def lr_factor(warmup: int, total: int, min_ratio: float) -> Callable[[int], float]:
    """Linear warm-up to 1 over `warmup` steps, then cosine decay to `min_ratio` at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _seed(*keys: int) -> int:
    """A 32-bit seed derived from (seed, step, stream, ...)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def _dataset_index(seed: int, sample: int, size: int) -> int:
    """Index of the `sample`-th clip drawn: a fresh permutation of the dataset every epoch."""
    epoch, position = divmod(sample, size)
    return int(np.random.default_rng([seed, epoch]).permutation(size)[position])


def _normalize(frames: np.ndarray, device: torch.device) -> Tensor:
    """[N, S, S, 3] uint8 -> [N, 3, S, S] float, normalised as the model's preprocessing."""
    x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).to(device)
    x = x.permute(0, 3, 1, 2).float() / 255.0  # [N, S, S, 3] -> [N, 3, S, S]
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def _batch(
    clips: list[Clip], config: TrainConfig, rng: np.random.Generator, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Stack clips: (images [C*T, 3, S, S], gt [T, N, 1, S, S] bool, clip of each object [N],
    T). Up to `max_objects` objects per clip, preferring those visible on frame 0."""
    t = min(config.num_frames, *(c.num_frames for c in clips))
    gts, owners = [], []
    for i, clip in enumerate(clips):
        visible = np.flatnonzero(clip.masks[0].reshape(clip.num_objects, -1).any(axis=1))
        pool = visible if visible.size else np.arange(clip.num_objects)
        chosen = np.sort(rng.permutation(pool)[: config.max_objects])
        gts.append(clip.masks[:t, chosen])  # [T, k, S, S]
        owners += [i] * len(chosen)
    if not owners:
        raise InvalidInputError("the batch has no object; every clip needs at least one mask")
    images = _normalize(np.concatenate([c.frames[:t] for c in clips]), device)
    gt = torch.from_numpy(np.concatenate(gts, axis=1)).to(device)[:, :, None]  # [T, N, 1, S, S]
    return images, gt, torch.tensor(owners, device=device), t


def _prompted_frame(
    model: SAM2Model,
    frame_idx: int,
    feats: ImageFeatures,
    gt: Tensor,
    kind: PromptKind,
    cond_outputs: Mapping[int, FrameOutput],
    num_frames: int,
    config: TrainConfig,
    gen: torch.Generator,
) -> tuple[FrameOutput, LossTerms]:
    """A conditioning frame [N objects]: the prompt, then corrective clicks on the errors."""
    w = config.loss
    if kind is PromptKind.MASK:
        out, sam = model.track_step(
            frame_idx, True, feats, None, gt.float(), cond_outputs, {}, num_frames
        )
        return out, sam_loss(sam.high_res_multimasks, sam.ious, sam.object_score_logits, gt, w)
    clicks: Clicks = (
        box_prompt(gt, gen)
        if kind is PromptKind.BOX
        else first_click(gt, gen, config.prob_center_click)
    )
    maps = feats.maps()
    high_res = maps[:-1] if len(maps) > 1 else None
    pix = model.condition_on_memory(frame_idx, True, feats, cond_outputs, {}, num_frames)
    mask_inputs: Tensor | None = None
    terms = zero_terms(gt.device)
    for round_idx in range(config.num_correction_rounds + 1):
        if round_idx > 0:
            from_gt = float(torch.rand((), generator=gen)) < config.prob_click_from_gt
            center = float(torch.rand((), generator=gen)) < config.prob_center_click
            pred = None if from_gt else sam.high_res_masks > 0
            clicks = clicks.append(click_from_errors(gt, pred, gen, center=center))
            mask_inputs = sam.low_res_masks  # the previous logits refine the new click
        points = clicks.as_inputs()
        sam = model.forward_sam_heads(
            pix, points, mask_inputs, high_res, model.use_multimask(True, points)
        )
        terms = terms + sam_loss(sam.high_res_multimasks, sam.ious, sam.object_score_logits, gt, w)
    out = FrameOutput(
        pred_masks=sam.low_res_masks,
        object_pointer=sam.object_pointer,
        object_score_logits=sam.object_score_logits,
        ious=sam.ious,
    )
    if model.config.num_maskmem > 0:
        out.memory_features, out.memory_pos = model.encode_memory(
            feats, sam.high_res_masks, sam.object_score_logits, is_mask_from_points=True
        )
    return out, terms


def clip_loss(
    model: SAM2Model,
    clips: list[Clip],
    config: TrainConfig,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> LossTerms:
    """Loss of one batch of clips: prompt the conditioning frames, track the rest."""
    device = model.device
    images, gt, owners, num_frames = _batch(clips, config, rng, device)
    features = model.forward_image(images)  # every frame of every clip, clip-major
    num_cond = 1 + int(torch.randint(min(config.max_cond_frames, num_frames), (), generator=gen))
    others = (torch.randperm(num_frames - 1, generator=gen) + 1).tolist()
    cond_frames = [0] + others[: num_cond - 1]
    kind = choose_prompt_kind(gen, config.prob_point, config.prob_box, allow_mask=num_frames > 1)

    cond_outputs: dict[int, FrameOutput] = {}
    non_cond_outputs: dict[int, FrameOutput] = {}
    terms = zero_terms(device)
    order = cond_frames + [t for t in range(num_frames) if t not in cond_frames]
    for t in order:
        feats = features.select(owners * num_frames + t)  # frame t of each object's clip
        if t in cond_frames:
            out, frame_terms = _prompted_frame(
                model, t, feats, gt[t], kind, cond_outputs, num_frames, config, gen
            )
            cond_outputs[t] = out
        else:
            out, sam = model.track_step(
                t, False, feats, None, None, cond_outputs, non_cond_outputs, num_frames
            )
            frame_terms = sam_loss(
                sam.high_res_multimasks, sam.ious, sam.object_score_logits, gt[t], config.loss
            )
            non_cond_outputs[t] = out
        terms = terms + frame_terms
    return terms


def _save_checkpoint(
    path: Path,
    model: SAM2Model,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    losses: list[float],
    config: TrainConfig,
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "losses": torch.tensor(losses, dtype=torch.float64),
        "rng_torch": torch.get_rng_state(),
        "config": json.dumps(dataclasses.asdict(config), default=str),
        "model_config": model.config.to_dict(),  # so last.pt also loads with load_model
    }
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def _restore(
    path: Path,
    model: SAM2Model,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, list[float]]:
    if not path.is_file():
        raise CheckpointError(f"cannot resume: {path} not found; run without --resume first")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_torch"])
    if "rng_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return int(state["step"]), [float(x) for x in state["losses"]]


def _param_groups(model: SAM2Model, weight_decay: float) -> list[dict[str, object]]:
    """Weight decay on weight matrices only: not on biases, norms and embeddings (SAM 2)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _init_path(name_or_path: str) -> Path:
    """A checkpoint file, or an official name (cached, else downloaded)."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix in {".pt", ".pth", ".safetensors"}:
        return path
    return download(checkpoint_info(name_or_path).name)


def train(config: TrainConfig, dataset: ClipDataset, stop_at: int | None = None) -> TrainResult:
    """Train (or fine-tune) a model on `dataset` for `config.steps` steps.

    `stop_at` ends the run after that many steps (writing last.pt) as an interruption would:
    for time-boxed jobs; resume later with `resume=True`.
    """
    config.validate()
    if len(dataset) == 0:
        raise InvalidInputError("the dataset is empty; point --data at clips with masks")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = SAM2Model(config.model_config())
    report = None
    if config.init_checkpoint:
        report = load_matching(model, read_state_dict(_init_path(config.init_checkpoint)))
    model.to(device).train()
    if config.freeze_image_encoder:
        model.image_encoder.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(config.warmup_steps, config.steps, config.min_lr_ratio)
    )
    out_dir = Path(config.out_dir)
    start, losses = 0, list[float]()
    if config.resume:
        start, losses = _restore(out_dir / LAST_CHECKPOINT, model, optimizer, scheduler)
    end = config.steps if stop_at is None else min(stop_at, config.steps)

    bar = tqdm(
        range(start, end), initial=start, total=config.steps, disable=not config.progress,
        desc="train", unit="step",
    )  # fmt: skip
    checkpoint: Path | None = None
    for step in bar:
        clips = []
        for i in range(config.batch_size):
            sample = step * config.batch_size + i
            rng = np.random.default_rng(_seed(config.seed, sample, _STREAM_DATA))
            clips.append(dataset.clip(_dataset_index(config.seed, sample, len(dataset)), rng))
        torch.manual_seed(_seed(config.seed, step, _STREAM_TORCH))  # dropout
        gen = torch.Generator().manual_seed(_seed(config.seed, step, _STREAM_PROMPTS))
        objects_rng = np.random.default_rng(_seed(config.seed, step, _STREAM_OBJECTS))
        terms = clip_loss(model, clips, config, objects_rng, gen)
        optimizer.zero_grad(set_to_none=True)
        # every frame given as a mask prompt leaves nothing to learn from this batch
        if terms.total.requires_grad:
            terms.total.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
        optimizer.step()  # skips parameters without gradients
        scheduler.step()
        losses.append(float(terms.total.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        done = step + 1
        if done % config.checkpoint_every == 0 or done == end:
            checkpoint = out_dir / LAST_CHECKPOINT
            _save_checkpoint(checkpoint, model, optimizer, scheduler, done, losses, config)
    bar.close()

    model_path = None
    if end == config.steps:
        model_path = out_dir / FINAL_MODEL
        with atomic_output(model_path) as tmp:
            # the official layout, plus the config so load_model needs no variant name
            torch.save({"model": model.state_dict(), "model_config": model.config.to_dict()}, tmp)
    return TrainResult(model, losses, max(end, start), checkpoint, model_path, report)
