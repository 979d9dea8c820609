"""Request and response bodies of the HTTP API (they make up the OpenAPI schema).

Coordinates are pixels of the original image / video frame, (x, y) from the top-left corner.
Masks travel as COCO compressed RLE (`{"size": [H, W], "counts": "..."}`, column-major, as
`pycocotools.mask.decode` reads it); the web page decodes the same format in JavaScript.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from masklet.io.masks import MAX_OBJECT_ID, area, encode_rle, mask_to_box
from masklet.io.records import FrameRecord
from masklet.prompts import ObjectPrompt

# masklet.text's defaults (GroundingDINO's recommended), spelt out so the schemas do not import
# torch; tests/server/test_text_api.py keeps them equal
DEFAULT_BOX_THRESHOLD = 0.35
DEFAULT_TEXT_THRESHOLD = 0.25

ObjectId = int
# request numbers are strict: JSON true is not object 1, "3" is not frame 3 (an int is a number)
Int = Annotated[int, Strict()]
Num = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
MAX_OBJECTS = 256
MAX_TEXT_CHARS = 1000  # a text prompt is a few phrases; more is certainly a client bug
# segment everything: 128 x 128 points on 1 + 4 + 16 + 64 crops is already hours on a CPU
MAX_POINTS_PER_SIDE = 128
MAX_CROP_LAYERS = 3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RLE(BaseModel):
    size: tuple[int, int] = Field(description="[height, width]")
    counts: str = Field(description="COCO compressed RLE counts")


class ObjectMask(BaseModel):
    id: int
    name: str | None = None
    label: str | None = Field(None, description="the text-prompt phrase that found the object")
    score: float | None = Field(None, description="predicted IoU (images) or visibility")
    color: str = Field(description='"#rrggbb": the colour masklet draws this object with')
    box: tuple[float, float, float, float] = Field(
        description="tight box x0, y0, x1, y1 (inclusive pixel indices; zeros when empty)"
    )
    area: int = Field(description="foreground pixels")
    mask: RLE


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class _Clicks(_Strict):
    """Clicks and / or a box. Only the JSON types are checked here: the numbers follow the one
    rule set of `masklet.prompt_rules` (finite, >= 0, on the image, labels 1/0, x2 > x1 and
    y2 > y1), applied by the pipeline, whose errors name the field (`prompts[0].points[1]`)."""

    points: list[tuple[Num, Num]] | None = Field(None, description="[[x, y], ...] clicks in pixels")
    labels: list[Int] | None = Field(
        None, description="per point: 1 include, 0 exclude (default all 1)"
    )
    box: list[Num] | None = Field(None, description="x1, y1, x2, y2")

    def prompt(
        self, *, frame: int, obj_id: int, name: str, where: str, mask: np.ndarray | None = None
    ) -> ObjectPrompt:
        """The typed prompt (checked by the one rule set)."""

        def array(value: object) -> np.ndarray | None:
            return None if value is None else np.asarray(value, dtype=np.float64)

        return ObjectPrompt(
            frame=frame, obj_id=obj_id, name=name, points=array(self.points),
            labels=array(self.labels), box=array(self.box), mask=mask, where=where,
        )  # fmt: skip


class ImageObjectPrompt(_Clicks):
    id: Int = Field(description=f"object id in 1..{MAX_OBJECT_ID} (checked with the prompts)")
    name: str | None = Field(None, max_length=200)
    mask: Bool = Field(False, description="the uploaded `mask` file is this object's prompt")


class TextQuery(_Strict):
    """A text prompt ("a dog. a red car.") and the detector's settings."""

    text: str | None = Field(
        None, min_length=1, max_length=MAX_TEXT_CHARS,
        description='phrases separated by "." (e.g. "a dog. a red car."); each detected box '
        "becomes an object",
    )  # fmt: skip
    box_threshold: Num = Field(
        DEFAULT_BOX_THRESHOLD, ge=0.0, le=1.0, description="lowest detection score kept"
    )
    text_threshold: Num = Field(
        DEFAULT_TEXT_THRESHOLD, ge=0.0, le=1.0,
        description="lowest score for a box to be labelled with a phrase",
    )  # fmt: skip
    max_objects: Int | None = Field(
        None, ge=1, le=MAX_OBJECTS, description="keep at most this many (best first)"
    )


class EverythingSettings(_Strict):
    """Segment everything: every region SAM 2's automatic mask generator finds (and no given
    object already covers) becomes an object named `region_{k}`. The defaults are the
    reference's, tuned for the official checkpoints; the bundled `masklet-nano-synthetic`
    model's masks score at most ~0.82 predicted IoU and ~0.79 stability, so with it lower both
    thresholds (0.5 finds its shapes)."""

    points_per_side: Int = Field(
        32, ge=1, le=MAX_POINTS_PER_SIDE, description="a grid of n x n point prompts"
    )
    pred_iou_thresh: Num = Field(
        0.8, ge=0.0, le=1.0, description="lowest predicted IoU (the decoder's quality) kept"
    )
    stability_score_thresh: Num = Field(
        0.95, ge=0.0, le=1.0,
        description="lowest stability (IoU of the mask at logit thresholds -1 and +1) kept",
    )  # fmt: skip
    box_nms_thresh: Num = Field(
        0.7, ge=0.0, le=1.0, description="box IoU above which the lower-scored mask is dropped"
    )
    crop_n_layers: Int = Field(
        0, ge=0, le=MAX_CROP_LAYERS, description="also run on 4, 16, ... overlapping crops"
    )
    min_mask_region_area: Int = Field(
        0, ge=0, description="remove holes and islands smaller than this (pixels)"
    )
    max_objects: Int | None = Field(
        None, ge=1, description="keep at most this many regions (best first)"
    )


class ImagePrompts(TextQuery):
    """The `prompts` form field of `POST /v1/images:segment`, as JSON: objects, or a text
    prompt, or both (text objects get the ids after the largest object id)."""

    objects: list[ImageObjectPrompt] = Field(
        default_factory=list,
        description="objects to segment; give objects, a text prompt, or both (the number of "
        "objects is bounded by the server's --max-objects)",
    )
    everything: EverythingSettings | None = Field(
        None, description="segment everything as well (regions after the given objects)"
    )
    multimask: Bool = Field(False, description="pick the best of 3 candidate masks")
    outputs: list[Literal["overlay", "id_mask"]] = Field(
        default_factory=list,
        description="extra images returned inline as base64 PNG: a coloured overlay, and/or "
        "an id mask (pixel value = object id, 8- or 16-bit grayscale)",
    )

    @model_validator(mode="after")
    def _one_mask(self) -> ImagePrompts:
        if sum(o.mask for o in self.objects) > 1:
            raise ValueError("only one object can take the uploaded mask")
        return self


class DetectedObject(BaseModel):
    """An object a text prompt found: its id and name, the phrase, and the detector's box."""

    id: int
    name: str
    label: str
    box: tuple[float, float, float, float] = Field(description="detector box x1, y1, x2, y2")
    score: float = Field(description="detection score in [0, 1]")


class ImageResult(BaseModel):
    width: int
    height: int
    objects: list[ObjectMask]
    detections: list[DetectedObject] = Field(
        default_factory=list, description="the objects the text prompt found (box prompts)"
    )
    overlay_png: str | None = Field(None, description="base64 PNG, if asked for")
    id_mask_png: str | None = Field(None, description="base64 PNG, if asked for")


class ObjectInfo(BaseModel):
    id: int
    name: str


class SessionInfo(BaseModel):
    id: str
    num_frames: int
    fps: float
    width: int
    height: int
    objects: list[ObjectInfo]
    frames_with_masks: int
    expires_in_seconds: float
    busy: bool


class FramePrompt(_Clicks):
    frame: Int = Field(ge=0)
    object_id: Int = Field(ge=1, le=MAX_OBJECT_ID)
    name: str | None = Field(None, max_length=200)
    clear_old_points: Bool = Field(
        True, description="replace this object's clicks on the frame (False adds to them)"
    )


class FrameMasks(BaseModel):
    frame: int
    time: float | None = Field(
        None, description="when the frame is presented, seconds (the video's own timestamps)"
    )
    objects: list[ObjectMask]


class TextRequest(TextQuery):
    """`POST /v1/sessions/{id}/text`: detect on one frame, add each box as a new object."""

    frame: Int = Field(ge=0)
    text: str = Field(  # type: ignore[assignment]  # required here, optional for images
        min_length=1, max_length=MAX_TEXT_CHARS, description='e.g. "a dog. a red car."'
    )


class TextResult(BaseModel):
    frame: int
    objects: list[ObjectMask] = Field(description="the frame's masks of every object")
    added: list[DetectedObject] = Field(description="the new objects, best detection first")


class EverythingRequest(EverythingSettings):
    """`POST /v1/sessions/{id}/everything`: segment everything on one frame and add each region
    as a new object (its mask is the prompt)."""

    frame: Int = Field(ge=0)


class FoundRegion(BaseModel):
    """An object segment everything found: its id, name, predicted IoU and box."""

    id: int
    name: str
    score: float = Field(description="predicted IoU of the region's mask")
    box: tuple[float, float, float, float] = Field(
        description="x1, y1, x2, y2 (exclusive ends: a valid box prompt for the region)"
    )


class EverythingResult(BaseModel):
    frame: int
    objects: list[ObjectMask] = Field(description="the frame's masks of every object")
    added: list[FoundRegion] = Field(description="the new objects, best predicted IoU first")


class PropagateRequest(_Strict):
    direction: Literal["forward", "backward", "both"] = "both"
    start_frame: Int | None = Field(None, ge=0, description="default: first prompted frame")
    max_frames: Int | None = Field(None, ge=1, description="frames per direction (default all)")


class FrameEvent(BaseModel):
    """`data` of each `frame` Server-Sent Event of a propagation."""

    frame: int
    time: float | None = Field(
        None, description="when the frame is presented, seconds (the video's own timestamps)"
    )
    done: int = Field(description="frames finished so far")
    total: int = Field(description="frames this propagation will visit")
    objects: list[ObjectMask]


class ClearRequest(_Strict):
    frame: Int = Field(ge=0)
    object_id: Int = Field(ge=1, le=MAX_OBJECT_ID)


class RenameRequest(_Strict):
    name: str = Field(min_length=1, max_length=200)


class ExportRequest(_Strict):
    format: Literal["mp4", "png_zip", "coco"] = Field(
        description="mp4: overlay video; png_zip: one id-mask PNG per frame; coco: RLE JSON"
    )
    colors: dict[int, str] | None = Field(
        None, description='object id -> "#rrggbb" for the overlay (default palette)'
    )
    alpha: Num = Field(0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_colors(self) -> ExportRequest:
        for obj_id, color in (self.colors or {}).items():
            if len(color) != 7 or color[0] != "#" or not _is_hex(color[1:]):
                raise ValueError(f'colors[{obj_id}]: expected "#rrggbb", got {color!r}')
        return self

    def rgb_colors(self) -> dict[int, tuple[int, int, int]]:
        return {
            i: (int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16))
            for i, c in (self.colors or {}).items()
        }


def _is_hex(text: str) -> bool:
    return all(ch in "0123456789abcdefABCDEF" for ch in text)


class ExportResult(BaseModel):
    format: str
    url: str = Field(description="download link, valid while the session lives")
    frames: int


class HealthInfo(BaseModel):
    status: Literal["ok"]
    model: str
    model_loaded: bool
    precision: str
    sessions: int
    jobs: int


def api_objects(record: FrameRecord) -> list[ObjectMask]:
    """API records of a frame's (or an image's) plain records, in increasing id order; the
    colour is the one every masklet output draws the object with."""
    out = []
    for obj in record.objects:
        rle = encode_rle(obj.mask)
        x0, y0, x1, y1 = mask_to_box(obj.mask)
        out.append(
            ObjectMask(
                id=obj.obj_id,
                name=obj.name,
                label=obj.label,
                score=obj.score,
                color="#{:02x}{:02x}{:02x}".format(*obj.color),
                box=(x0, y0, x1, y1),
                area=area(obj.mask),
                mask=RLE(size=(rle["size"][0], rle["size"][1]), counts=rle["counts"]),
            )  # fmt: skip
        )
    return out
