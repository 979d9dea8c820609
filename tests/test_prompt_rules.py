"""The one prompt rule set, at the predictors' level: NaN, infinity and labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from masklet.errors import InvalidPromptError
from masklet.modeling.sam2 import build_model
from masklet.prompt_rules import (
    check_box,
    check_label_values,
    check_labels,
    check_model_points,
    check_points,
)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_coordinates_are_refused_everywhere(bad: float) -> None:
    with pytest.raises(InvalidPromptError, match=r"p\[1\]: coordinates must be finite"):
        check_points(np.array([[1.0, 2.0], [bad, 3.0]]), "p")
    with pytest.raises(InvalidPromptError, match="box: coordinates must be finite"):
        check_box(np.array([0.0, 0.0, bad, 5.0]), "box")
    with pytest.raises(InvalidPromptError, match="finite"):
        check_model_points(np.array([[bad, 1.0]]), 10, 10, normalize=True)


def test_labels_padding_only_where_it_means_padding() -> None:
    check_label_values(np.array([1, 0, -1]), allow_padding=True)  # batched image input
    with pytest.raises(InvalidPromptError, match=r"got \[-1\]"):
        check_label_values(np.array([1, -1]), allow_padding=False)
    with pytest.raises(InvalidPromptError, match=r"l\[1\]: .*got -1 \(-1 marks a padding"):
        check_labels(np.array([1, -1]), 2, "l")


def test_predictors_refuse_nan_clicks() -> None:
    from masklet.image_predictor import ImagePredictor
    from masklet.video.predictor import VideoPredictor
    from tests.parity.reference import small_config
    from tests.server.conftest import moving_square

    tiny_model = build_model(small_config("sam2.1_hiera_tiny", image_size=128)).eval()
    image = ImagePredictor(tiny_model)
    image.set_image(moving_square(1)[0])
    with pytest.raises(InvalidPromptError, match="finite"):
        image.predict(point_coords=[[math.nan, 3]], point_labels=[1])
    video = VideoPredictor(tiny_model)
    session = video.init_state(moving_square(3))
    with pytest.raises(InvalidPromptError, match="finite"):
        video.add_new_points_or_box(session, 0, 1, points=[[math.nan, 3]], labels=[1])
    with pytest.raises(InvalidPromptError, match="1 \\(include\\) or 0"):
        video.add_new_points_or_box(session, 0, 1, points=[[3, 3]], labels=[-1])
