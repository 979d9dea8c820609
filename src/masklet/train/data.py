"""Training clips: frames and per-object masks at the model's square input size.

Every source becomes a `ClipDataset`: `clip(index, rng)` returns a `Clip` of T frames
([T, S, S, 3] uint8) and K object masks ([T, K, S, S] bool). Randomness (which window of a
video) comes only from the `rng` passed in, so the trainer can reproduce any batch from its
seed. Single images are 1-frame clips.

Sources: the synthetic generator (`masklet.train.synthetic`), a DAVIS-layout folder
(JPEGImages/<seq>/*.jpg + Annotations/<seq>/*.png palette ids) and a COCO instances JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from masklet.errors import InvalidInputError
from masklet.io.images import read_image
from masklet.io.masks import read_palette_png

if TYPE_CHECKING:
    from masklet.train.synthetic import SyntheticConfig

# DAVIS marks uncertain pixels with 255; they belong to no object.
DAVIS_VOID_ID = 255
# Random windows tried before settling for one whose first frame shows no object.
_WINDOW_TRIES = 10
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Clip:
    """frames: [T, S, S, 3] uint8; masks: [T, K, S, S] bool, one channel per object."""

    frames: np.ndarray
    masks: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def num_objects(self) -> int:
        return int(self.masks.shape[1])


class ClipDataset(Protocol):
    def __len__(self) -> int: ...

    def clip(self, index: int, rng: np.random.Generator) -> Clip: ...


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """[T, H, W, 3] uint8 -> [T, S, S, 3] uint8, bilinear with antialiasing (as the model's
    own preprocessing), aspect ratio not kept."""
    if frames.shape[1:3] == (size, size):
        return frames
    x = (
        torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2).float()
    )  # [T,3,H,W]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """[T, K, H, W] bool -> [T, K, S, S] bool: area-weighted resize, then >= 0.5 (keeps thin
    parts that nearest-neighbour sampling would drop when shrinking)."""
    if masks.shape[2:4] == (size, size):
        return masks.astype(bool, copy=False)
    x = torch.from_numpy(np.require(masks, requirements=["C", "W"])).float()  # [T, K, H, W]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (x >= 0.5).numpy()


def _clip(frames: np.ndarray, masks: np.ndarray, size: int) -> Clip:
    """Resize, and drop objects that are empty on every frame after resizing."""
    frames, masks = resize_frames(frames, size), resize_masks(masks, size)
    seen = masks.reshape(masks.shape[0], masks.shape[1], -1).any(axis=(0, 2))  # [K]
    return Clip(frames=frames, masks=masks[:, seen])


class SyntheticClips:
    """Clips from `masklet.train.synthetic`: videos, or single images with `images=True`."""

    def __init__(
        self,
        seeds: list[int],
        image_size: int,
        config: SyntheticConfig | None = None,
        images: bool = False,
    ) -> None:
        from masklet.train import synthetic

        self.seeds = list(seeds)
        self.image_size = image_size
        self.images = images
        self.config = config if config is not None else synthetic.SyntheticConfig()
        self._videos = synthetic.SyntheticVideoDataset(self.seeds, self.config)

    def __len__(self) -> int:
        return len(self.seeds)

    def clip(self, index: int, rng: np.random.Generator) -> Clip:
        if self.images:
            from masklet.train.synthetic import make_image

            image, masks = make_image(
                self.seeds[index],
                height=self.config.height,
                width=self.config.width,
                max_objects=self.config.max_objects,
            )
            return _clip(image[None], masks[None], self.image_size)
        video = self._videos[index]
        return _clip(video.frames, video.masks, self.image_size)


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)


class DavisClips:
    """Random T-frame windows of the sequences of a DAVIS-layout folder.

    `root/JPEGImages/<seq>/*.jpg` with `root/Annotations/<seq>/*.png` (palette ids, 0 =
    background, 255 = void); the DAVIS 2017 `480p` sub-folder is used when present. Only frames
    with an annotation are used. Objects are those visible on the window's first frame (the
    frame that gets the prompt); a sequence shorter than T repeats its last frame.
    """

    def __init__(self, root: str | Path, num_frames: int, image_size: int) -> None:
        root = Path(root)
        images, annotations = root / "JPEGImages", root / "Annotations"
        if (images / "480p").is_dir() and (annotations / "480p").is_dir():
            images, annotations = images / "480p", annotations / "480p"
        if not images.is_dir() or not annotations.is_dir():
            raise InvalidInputError(
                f"expected a DAVIS-layout folder with JPEGImages/<seq>/ and Annotations/<seq>/, "
                f"got {root}; pass the folder that holds JPEGImages and Annotations"
            )
        self.num_frames, self.image_size = num_frames, image_size
        self.sequences: list[list[tuple[Path, Path]]] = []
        self.names: list[str] = []
        for seq in sorted(p for p in annotations.iterdir() if p.is_dir()):
            frame_dir = images / seq.name
            by_stem = {f.stem: f for f in _frame_files(frame_dir)} if frame_dir.is_dir() else {}
            pairs = [
                (by_stem[png.stem], png) for png in sorted(seq.glob("*.png")) if png.stem in by_stem
            ]
            if pairs:
                self.sequences.append(pairs)
                self.names.append(seq.name)
        if not self.sequences:
            raise InvalidInputError(
                f"no annotated sequences found under {annotations}: expected <seq>/<frame>.png "
                f"next to {images}/<seq>/<frame>.jpg with matching names"
            )

    def __len__(self) -> int:
        return len(self.sequences)

    def clip(self, index: int, rng: np.random.Generator) -> Clip:
        pairs = self.sequences[index]
        last_start = max(len(pairs) - self.num_frames, 0)
        ids: np.ndarray = np.zeros(0, dtype=np.int64)
        start = 0
        for _ in range(_WINDOW_TRIES):
            start = int(rng.integers(0, last_start + 1))
            first = read_palette_png(pairs[start][1])
            ids = np.setdiff1d(np.unique(first), [0, DAVIS_VOID_ID])
            if ids.size:
                break
        window = [pairs[min(start + t, len(pairs) - 1)] for t in range(self.num_frames)]
        frames = np.stack([read_image(jpg) for jpg, _ in window])  # [T, H, W, 3]
        id_maps = np.stack([read_palette_png(png) for _, png in window])  # [T, H, W]
        if id_maps.shape[1:] != frames.shape[1:3]:
            raise InvalidInputError(
                f"sequence {self.names[index]}: annotations are {id_maps.shape[1:]} but frames "
                f"are {frames.shape[1:3]}; frames and annotations must have the same size"
            )
        masks = id_maps[:, None] == ids[None, :, None, None]  # [T, K, H, W]
        return _clip(frames, masks, self.image_size)


class CocoImages:
    """Images of a COCO instances JSON as 1-frame clips, one object per non-crowd annotation.

    Image files are looked up as `images_dir/<file_name>` (default: the JSON's folder).
    """

    def __init__(
        self, annotations: str | Path, image_size: int, images_dir: str | Path | None = None
    ) -> None:
        from pycocotools.coco import COCO

        path = Path(annotations)
        if not path.is_file():
            raise InvalidInputError(
                f"COCO annotation file not found: {path}; pass an instances_*.json file"
            )
        try:
            self.coco = COCO(str(path))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"cannot read COCO annotations {path}: {exc}") from exc
        self.images_dir = Path(images_dir) if images_dir is not None else path.parent
        self.image_size = image_size
        self.image_ids = [
            image_id
            for image_id in sorted(self.coco.getImgIds())
            if self.coco.getAnnIds(imgIds=[image_id], iscrowd=False)
        ]
        if not self.image_ids:
            raise InvalidInputError(f"{path} has no image with a non-crowd annotation")

    def __len__(self) -> int:
        return len(self.image_ids)

    def clip(self, index: int, rng: np.random.Generator) -> Clip:
        image_id = self.image_ids[index]
        info = self.coco.loadImgs([image_id])[0]
        file = self.images_dir / info["file_name"]
        image = read_image(file)
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=False))
        masks = np.stack([self.coco.annToMask(a).astype(bool) for a in anns])  # [K, H, W]
        if masks.shape[1:] != image.shape[:2]:
            raise InvalidInputError(
                f"{file} is {image.shape[1]}x{image.shape[0]} but its annotations say "
                f"{info['width']}x{info['height']}"
            )
        return _clip(image[None], masks[None], self.image_size)


def open_dataset(
    spec: str,
    image_size: int,
    *,
    num_frames: int,
    seed: int = 0,
    num_synthetic: int = 1000,
    occlusion_prob: float | None = None,
) -> ClipDataset:
    """A dataset from a command-line spec: `synthetic`, `synthetic-images`, `davis:PATH` or
    `coco:JSON[:IMAGES_DIR]`. Synthetic videos have `num_frames` frames and, if given,
    `occlusion_prob` (the generator's default otherwise)."""
    kind, _, rest = spec.partition(":")
    if occlusion_prob is not None and kind != "synthetic":
        raise InvalidInputError(
            f"--occlusion-prob applies to synthetic videos only, not to {spec!r}"
        )
    if kind in ("synthetic", "synthetic-images"):
        from masklet.train.synthetic import HELDOUT_SEED_BASE, SyntheticConfig

        seeds = [seed * num_synthetic + i for i in range(num_synthetic)]
        if seeds[-1] >= HELDOUT_SEED_BASE:
            raise InvalidInputError(
                f"synthetic training seeds {seeds[0]}..{seeds[-1]} reach the held-out seeds "
                f"(>= {HELDOUT_SEED_BASE}); use a smaller --seed or --num-synthetic"
            )
        config = SyntheticConfig(num_frames=num_frames)
        if occlusion_prob is not None:
            config = dataclasses.replace(config, occlusion_prob=occlusion_prob)
        return SyntheticClips(seeds, image_size, config, images=kind == "synthetic-images")
    if kind == "davis" and rest:
        return DavisClips(rest, num_frames, image_size)
    if kind == "coco" and rest:
        json_path, _, images_dir = rest.partition(":")
        return CocoImages(json_path, image_size, images_dir or None)
    raise InvalidInputError(
        f"unknown data source {spec!r}; expected synthetic, synthetic-images, davis:PATH or "
        "coco:JSON[:IMAGES_DIR]"
    )
