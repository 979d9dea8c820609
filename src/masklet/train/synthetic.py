"""Seeded synthetic videos with exact ground-truth masks, for training and tests.

Each video shows 1-3 textured shapes (ellipses, star polygons, blobs; stripes, checkers,
noise, gradients or crops of real photos) moving with affine motion (translation with
bounces, rotation, pulsing scale) over a panning photo or pattern background. Objects are
painted back to front, so the masks are exactly the visible pixels: they occlude each other,
leave through an edge and come back, and are hidden completely for a stretch of frames by an
untracked occluder that sweeps in, follows them and sweeps out.

Everything is drawn with nearest-neighbour sampling from a `numpy.random.Generator` seeded
with the video's seed, so a seed always gives the same video (with the same scikit-image
photos available: see `masklet.train.textures`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from masklet.errors import InvalidInputError
from masklet.train.textures import random_texture

MIN_SIZE = 16  # smallest frame side the shapes and motions are designed for
MIN_SPRITE = 8  # smallest sprite side in pixels
SPRITE_FRACTION = (0.25, 0.5)  # object size as a fraction of the shorter frame side
MAX_SPEED = 0.035  # object speed per frame, as a fraction of the shorter frame side
MAX_SPIN = 0.12  # radians per frame
MAX_PULSE = 0.2  # scale varies within 1 +- this
MAX_PAN_SPEED = 0.01  # background pan per frame, fraction of the shorter side
BACKGROUND_PHOTO_PROB = 0.7  # backgrounds are photos this often when photos are allowed
OCCLUDER_INNER_RADIUS = 0.7  # occluders contain a centred disk of this normalised radius
COVER_MARGIN = 2.0  # pixels of slack so nearest-neighbour rounding never leaves a gap
MIN_FIRST_FRAME_PIXELS = 16  # every tracked object must show this much on frame 0...
MIN_FIRST_FRAME_FRACTION = 0.4  # ...and this fraction of its in-frame footprint
MAX_LAYOUT_ATTEMPTS = 8
HELDOUT_SEED_BASE = 10**6  # seeds from here on are held out: training draws only below it


@dataclass(frozen=True)
class SyntheticConfig:
    height: int = 128
    width: int = 128
    num_frames: int = 8
    min_objects: int = 1
    max_objects: int = 3
    # Chance that an object is fully hidden for >= min_occlusion_frames frames. A clip needs
    # num_frames >= min_occlusion_frames + 2 (visible before and after); shorter clips have none.
    occlusion_prob: float = 0.3
    min_occlusion_frames: int = 5
    leave_prob: float = 0.2  # chance that an object leaves and re-enters (needs >= 3 frames)
    use_photos: bool = True  # scikit-image sample photos as textures/backgrounds if installed

    def __post_init__(self) -> None:
        if min(self.height, self.width) < MIN_SIZE:
            raise InvalidInputError(
                f"synthetic frames must be at least {MIN_SIZE}x{MIN_SIZE}, got "
                f"{self.height}x{self.width} (height x width)"
            )
        if self.num_frames < 1 or self.min_occlusion_frames < 1:
            raise InvalidInputError(
                f"num_frames and min_occlusion_frames must be >= 1, got {self.num_frames} and "
                f"{self.min_occlusion_frames}"
            )
        if not 1 <= self.min_objects <= self.max_objects:
            raise InvalidInputError(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects} and "
                f"{self.max_objects}"
            )
        for name in ("occlusion_prob", "leave_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidInputError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class SyntheticVideo:
    frames: np.ndarray  # [T, H, W, 3] uint8 RGB
    masks: np.ndarray  # [T, K, H, W] bool: visible pixels of each object
    obj_ids: list[int]  # K ids, 1..K
    seed: int


@dataclass(frozen=True)
class _Sprite:
    alpha: np.ndarray  # [S, S] bool shape
    texture: np.ndarray  # [S, S, 3] uint8


@dataclass(frozen=True)
class _Track:
    """Pose on every frame: centre (x, y) in pixels, rotation in radians, scale. `[T]` each."""

    cx: np.ndarray
    cy: np.ndarray
    angle: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class _Layer:
    sprite: _Sprite
    track: _Track


# ----- shapes and motion -------------------------------------------------------------------


def _shape(size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ellipse, star polygon or blob inside the unit disk: `[S, S]` bool."""
    half = (size - 1) / 2
    y, x = (np.mgrid[0:size, 0:size] - half) / max(half, 1.0)  # [-1, 1] coordinates
    kind = int(rng.integers(3))
    if kind == 0:  # ellipse
        a, b = rng.uniform(0.45, 1.0, size=2)
        return (x / a) ** 2 + (y / b) ** 2 <= 1
    theta = np.arctan2(y, x)
    rho = np.hypot(x, y)
    if kind == 1:  # polygon, star-shaped around the centre
        n = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, size=n))
        radii = rng.uniform(0.5, 1.0, size=n) * half
        points = [(half + r * math.cos(a), half + r * math.sin(a)) for a, r in zip(angles, radii)]
        canvas = Image.new("1", (size, size))
        ImageDraw.Draw(canvas).polygon(points, fill=1)
        return np.asarray(canvas, dtype=bool) & (rho <= 1)
    radius = np.full_like(theta, 0.7)  # blob: a circle with random low-frequency wobbles
    for k in range(2, 6):
        radius += rng.uniform(0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    return rho <= np.minimum(radius, 1.0)


def _bounce(start: float, velocity: float, t: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Positions along a line that reflects off lo and hi (a triangle wave): `[T]`."""
    span = hi - lo
    if span <= 0:
        return np.full(t.shape, (lo + hi) / 2)
    u = np.mod(start - lo + velocity * t, 2 * span)
    return lo + span - np.abs(u - span)


def _window(length: int, num_frames: int, rng: np.random.Generator) -> tuple[int, int]:
    """A stretch [first, last] of frames that starts after frame 0 and ends before the last."""
    first = int(rng.integers(1, num_frames - length))
    return first, first + length - 1


def _distance_to(window: tuple[int, int], t: np.ndarray) -> np.ndarray:
    """Frames from each t to the window (0 inside): `[T]`."""
    return np.maximum(window[0] - t, 0) + np.maximum(t - window[1], 0)


def _track(size: int, cfg: SyntheticConfig, rng: np.random.Generator) -> _Track:
    t = np.arange(cfg.num_frames, dtype=np.float64)
    short = min(cfg.height, cfg.width)
    scale = 1 + rng.uniform(0, MAX_PULSE) * np.sin(rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6))
    angle = rng.uniform(0, 2 * math.pi) + rng.uniform(-MAX_SPIN, MAX_SPIN) * t
    margin = 0.3 * size  # keeps most of the object in view while it bounces around
    cx = _bounce(
        rng.uniform(margin, cfg.width - 1 - margin),
        rng.uniform(-MAX_SPEED, MAX_SPEED) * short,
        t,
        margin,
        cfg.width - 1 - margin,
    )
    cy = _bounce(
        rng.uniform(margin, cfg.height - 1 - margin),
        rng.uniform(-MAX_SPEED, MAX_SPEED) * short,
        t,
        margin,
        cfg.height - 1 - margin,
    )
    if cfg.num_frames >= 3 and rng.random() < cfg.leave_prob:
        out = _window(int(rng.integers(1, max(1, cfg.num_frames // 6) + 1)), cfg.num_frames, rng)
        # 1 inside the window, 1/2 a frame away (half way out), 0 further away.
        push = np.clip(1 - _distance_to(out, t) / 2, 0, 1)
        extent = scale * size / 2 + 1  # the shape lies in a disk of radius size/2 * scale
        edge = int(rng.integers(4))
        if edge == 0:
            cx = cx - push * (cx + extent)
        elif edge == 1:
            cx = cx + push * (cfg.width - 1 - cx + extent)
        elif edge == 2:
            cy = cy - push * (cy + extent)
        else:
            cy = cy + push * (cfg.height - 1 - cy + extent)
    return _Track(cx, cy, angle, scale)


def _occluder(target: _Track, size: int, cfg: SyntheticConfig, rng: np.random.Generator) -> _Layer:
    """An untracked shape that sweeps in, covers `target` for a stretch of frames, sweeps out."""
    t = np.arange(cfg.num_frames, dtype=np.float64)
    length = int(rng.integers(cfg.min_occlusion_frames, cfg.num_frames - 1))
    hidden = _window(length, cfg.num_frames, rng)
    cover = float(target.scale.max()) * size / 2 + COVER_MARGIN  # radius to cover
    occ_size = math.ceil(2 * cover / OCCLUDER_INNER_RADIUS) + 2
    half = (occ_size - 1) / 2
    y, x = (np.mgrid[0:occ_size, 0:occ_size] - half) / half
    alpha = _shape(occ_size, rng) | (np.hypot(x, y) <= OCCLUDER_INNER_RADIUS)
    texture = random_texture(occ_size, occ_size, rng, cfg.use_photos)
    # One frame before/after the window the two disks just miss each other; then further.
    step = cover + occ_size / 2 + 1
    before, after = rng.uniform(0, 2 * math.pi, size=2)
    dist = _distance_to(hidden, t) * step
    direction = np.where(t < hidden[0], before, after)
    cx = target.cx + dist * np.cos(direction)
    cy = target.cy + dist * np.sin(direction)
    angle = rng.uniform(0, 2 * math.pi) + rng.uniform(-MAX_SPIN, MAX_SPIN) * t
    return _Layer(_Sprite(alpha, texture), _Track(cx, cy, angle, np.ones_like(t)))


# ----- rendering ---------------------------------------------------------------------------


def _paint(layer: _Layer, t: int, frame: np.ndarray, owner: np.ndarray, index: int) -> None:
    """Paint one layer on frame t; mark its pixels with `index` in `owner` `[H, W]`."""
    track, sprite = layer.track, layer.sprite
    size = sprite.alpha.shape[0]
    cx, cy, scale = float(track.cx[t]), float(track.cy[t]), float(track.scale[t])
    reach = scale * size / math.sqrt(2) + 1  # half-diagonal of the rotated sprite
    height, width = owner.shape
    x0, x1 = max(0, math.floor(cx - reach)), min(width, math.ceil(cx + reach) + 1)
    y0, y1 = max(0, math.floor(cy - reach)), min(height, math.ceil(cy + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return  # off screen
    dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx -= cx
    dy -= cy
    cos, sin = math.cos(track.angle[t]) / scale, math.sin(track.angle[t]) / scale
    centre = (size - 1) / 2
    # Inverse affine map: frame pixel -> sprite pixel (nearest neighbour).
    u = np.rint(cos * dx + sin * dy + centre).astype(np.int64)
    v = np.rint(-sin * dx + cos * dy + centre).astype(np.int64)
    inside = (u >= 0) & (u < size) & (v >= 0) & (v < size)
    u, v = u.clip(0, size - 1), v.clip(0, size - 1)
    covered = inside & sprite.alpha[v, u]
    frame[y0:y1, x0:x1][covered] = sprite.texture[v, u][covered]
    owner[y0:y1, x0:x1][covered] = index


def _background(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """The background of every frame, panning at a constant speed: `[T, H, W, 3]` uint8."""
    speed = rng.uniform(-MAX_PAN_SPEED, MAX_PAN_SPEED, size=2) * min(cfg.height, cfg.width)
    shifts = np.rint(np.outer(np.arange(cfg.num_frames), speed)).astype(np.int64)  # [T, 2]
    shifts -= shifts.min(axis=0)  # start so that every crop is inside the canvas
    pad_y, pad_x = shifts.max(axis=0)
    canvas = random_texture(
        cfg.height + int(pad_y), cfg.width + int(pad_x), rng, cfg.use_photos,
        photo_prob=BACKGROUND_PHOTO_PROB,
    )  # fmt: skip
    return np.stack(
        [canvas[sy : sy + cfg.height, sx : sx + cfg.width] for sy, sx in shifts.tolist()]
    )


def _render(
    background: np.ndarray, layers: Sequence[_Layer], num_tracked: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint `layers` back to front; the first `num_tracked` are the tracked objects.

    Returns frames `[T, H, W, 3]`, visible masks `[T, K, H, W]` and, per object, the pixels
    it would cover on frame 0 if nothing hid it (`[K]`).
    """
    frames = background.copy()
    num_frames, height, width = frames.shape[:3]
    masks = np.zeros((num_frames, num_tracked, height, width), dtype=bool)
    footprint = np.zeros(num_tracked, dtype=np.int64)
    for t in range(num_frames):
        owner = np.zeros((height, width), dtype=np.int16)  # 0 = background, i + 1 = layer i
        for i, layer in enumerate(layers):
            if t == 0 and i < num_tracked:
                alone = np.zeros_like(owner)
                _paint(layer, 0, frames[0].copy(), alone, 1)
                footprint[i] = np.count_nonzero(alone)
            _paint(layer, t, frames[t], owner, i + 1)
        for k in range(num_tracked):
            masks[t, k] = owner == k + 1
    return frames, masks, footprint


def make_video(seed: int, config: SyntheticConfig = SyntheticConfig()) -> SyntheticVideo:
    """A video of `config.num_frames` frames; every object is visible on frame 0."""
    rng = np.random.default_rng(seed)
    background = _background(config, rng)
    short = min(config.height, config.width)
    occlusion_fits = config.num_frames >= config.min_occlusion_frames + 2
    for _attempt in range(MAX_LAYOUT_ATTEMPTS):
        num = int(rng.integers(config.min_objects, config.max_objects + 1))
        objects: list[_Layer] = []
        occluders: list[_Layer] = []
        for _ in range(num):
            size = max(MIN_SPRITE, round(rng.uniform(*SPRITE_FRACTION) * short))
            sprite = _Sprite(_shape(size, rng), random_texture(size, size, rng, config.use_photos))
            track = _track(size, config, rng)
            objects.append(_Layer(sprite, track))
            if occlusion_fits and rng.random() < config.occlusion_prob:
                occluders.append(_occluder(track, size, config, rng))
        # Tracked objects in random depth order; occluders in front of all of them.
        order = rng.permutation(num)
        layers = [objects[i] for i in order] + occluders
        frames, masks, footprint = _render(background, layers, num)
        masks = masks[:, np.argsort(order)]  # back to the objects' own order
        footprint = footprint[np.argsort(order)]
        shown = masks[0].reshape(num, -1).sum(axis=1)  # [K] pixels on frame 0
        ok = (shown >= MIN_FIRST_FRAME_PIXELS) & (shown >= MIN_FIRST_FRAME_FRACTION * footprint)
        if ok.all():
            break
    else:  # rare: drop the objects that stayed hidden on frame 0 in every attempt
        masks = masks[:, ok]
    return SyntheticVideo(frames, masks, list(range(1, masks.shape[1] + 1)), seed)


def make_image(
    seed: int, height: int = 128, width: int = 128, max_objects: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """One still frame for image-mode training: `[H, W, 3]` uint8 and `[K, H, W]` bool."""
    config = SyntheticConfig(
        height=height, width=width, num_frames=1, max_objects=max_objects,
        occlusion_prob=0.0, leave_prob=0.0,
    )  # fmt: skip
    video = make_video(seed, config)
    return video.frames[0], video.masks[0]


class SyntheticVideoDataset:
    """A map-style dataset: item i is `make_video(seeds[i], config)`, the same every time."""

    def __init__(
        self, seeds: Sequence[int] | range, config: SyntheticConfig = SyntheticConfig()
    ) -> None:
        self.seeds = seeds
        self.config = config

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> SyntheticVideo:
        return make_video(int(self.seeds[i]), self.config)


def write_davis(
    videos: Iterable[SyntheticVideo], root: Path, names: Sequence[str] | None = None
) -> None:
    """Write videos as a DAVIS folder: `JPEGImages/<seq>/00000.jpg` and
    `Annotations/<seq>/00000.png` (palette PNGs whose pixel value is the object id).

    Sequences are named `names[i]`, or `seed<seed>` by default.
    """
    from masklet.io.images import write_image
    from masklet.io.masks import id_mask, write_palette_png

    root = Path(root)
    written: set[str] = set()
    for i, video in enumerate(videos):
        if names is not None and i >= len(names):
            raise InvalidInputError(f"got {len(names)} names for more videos than that")
        name = names[i] if names is not None else f"seed{video.seed}"
        if name in written:
            raise InvalidInputError(f"two sequences would be named {name!r}; give unique names")
        written.add(name)
        shape = video.frames.shape[1:3]
        for t in range(video.frames.shape[0]):
            write_image(root / "JPEGImages" / name / f"{t:05d}.jpg", video.frames[t])
            ids = id_mask(dict(zip(video.obj_ids, video.masks[t])), shape)
            write_palette_png(root / "Annotations" / name / f"{t:05d}.png", ids)
    if names is not None and len(written) != len(names):
        raise InvalidInputError(f"got {len(names)} names for {len(written)} videos")


def click_point(mask: np.ndarray) -> tuple[int, int]:
    """The pixel (x, y) deepest inside a `[H, W]` mask: a good positive click."""
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y)


def demo_config(num_frames: int = 48, size: tuple[int, int] = (256, 192)) -> SyntheticConfig:
    """The config of `make_demo_video` (`size` = (width, height)): two objects that are
    hidden or leave the frame half of the time, so tracking has something to recover from.
    (`make_demo_video` turns the photos off.)"""
    width, height = size
    return SyntheticConfig(
        height=height, width=width, num_frames=num_frames, min_objects=2, max_objects=2,
        occlusion_prob=0.5, leave_prob=0.5,
    )  # fmt: skip


def make_demo_video(
    path: str | Path,
    seed: int = 0,
    num_frames: int = 48,
    size: tuple[int, int] = (256, 192),
    fps: float = 24,
    image_path: str | Path | None = None,
) -> dict[int, tuple[int, int]]:
    """Write a synthetic MP4 (`size` = (width, height)) with two objects to track, and its
    frame 0 as a sample image at `image_path` (PNG or JPEG by its suffix) if given.

    Returns:
      object id -> (x, y) click point deep inside that object on frame 0 (ids 1, 2 in the
      clip's own object order, the same with or without optional packages).
    """
    from masklet.io.video import VideoWriter

    # Procedural textures only: the clip (and the clicks printed for it) must be the same
    # with and without the optional scikit-image photos.
    config = dataclasses.replace(demo_config(num_frames, size), use_photos=False)
    video = make_video(seed, config)
    with VideoWriter(path, fps=fps, size=size) as writer:
        for frame in video.frames:
            writer.write(frame)
    if image_path is not None:
        Image.fromarray(video.frames[0]).save(image_path)
    return {obj_id: click_point(video.masks[0, k]) for k, obj_id in enumerate(video.obj_ids)}
