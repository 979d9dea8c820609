"""The pipeline layer: typed image and video requests, validated once against `Limits`, run
with progress and cancellation, written through the shared outputs. The CLI, the server and
batch work translate their inputs into these requests; nothing else drives the predictors for
users (see docs/ARCHITECTURE.md)."""

from masklet.pipelines.control import CancelledError, CancelToken, Progress, ProgressFn
from masklet.pipelines.image import (
    ImageResult,
    PreparedImage,
    prepare_image,
    segment_image,
    write_image_outputs,
)
from masklet.pipelines.limits import LimitExceededError, Limits
from masklet.pipelines.requests import (
    ImageOutputs,
    ImageRequest,
    TextQuery,
    VideoOutputs,
    VideoRequest,
)
from masklet.pipelines.video import (
    PreparedVideo,
    VideoSummary,
    prepare_video,
    propagate_records,
    track_video,
)

__all__ = [
    "CancelToken",
    "CancelledError",
    "ImageOutputs",
    "ImageRequest",
    "ImageResult",
    "LimitExceededError",
    "Limits",
    "PreparedImage",
    "PreparedVideo",
    "Progress",
    "ProgressFn",
    "TextQuery",
    "VideoOutputs",
    "VideoRequest",
    "VideoSummary",
    "prepare_image",
    "prepare_video",
    "propagate_records",
    "segment_image",
    "track_video",
    "write_image_outputs",
]
