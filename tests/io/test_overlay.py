"""Overlays, outlines, click markers and the three Replicate mask renderings."""

from __future__ import annotations

import numpy as np
import pytest

from masklet.errors import InvalidInputError, InvalidPromptError
from masklet.io.overlay import (
    MASK_TYPES,
    NEGATIVE_CLICK_COLOR,
    POSITIVE_CLICK_COLOR,
    draw_overlay,
    object_color,
    render_mask_type,
)

GRAY = 100


def _scene(h: int = 20, w: int = 24):
    image = np.full((h, w, 3), GRAY, dtype=np.uint8)
    mask = np.zeros((h, w), dtype=bool)
    mask[5:15, 6:18] = True  # 10 x 12 rectangle away from the border
    return image, mask


def test_object_colors_stable_and_distinct():
    colors = [object_color(i) for i in range(1, 201)]
    assert len(set(colors)) == 200
    assert colors == [object_color(i) for i in range(1, 201)]
    assert all(0 <= c <= 255 for rgb in colors for c in rgb)
    with pytest.raises(InvalidInputError):
        object_color(-1)


def test_tint_inside_untouched_outside_without_outline():
    image, mask = _scene()
    color = (250, 0, 0)
    out = draw_overlay(image, {1: mask}, alpha=0.5, outline=False, colors={1: color})
    assert np.array_equal(out[~mask], image[~mask])
    expected = np.rint((np.array([GRAY] * 3) + np.array(color)) / 2).astype(np.uint8)
    assert np.all(out[mask] == expected)  # (100+250)/2 = 175, 100/2 = 50
    assert np.array_equal(image, np.full_like(image, GRAY))  # input not modified


def test_alpha_extremes():
    image, mask = _scene()
    assert np.array_equal(draw_overlay(image, {1: mask}, alpha=0.0, outline=False), image)
    solid = draw_overlay(image, {3: mask}, alpha=1.0, outline=False)
    assert np.all(solid[mask] == object_color(3))
    with pytest.raises(InvalidInputError, match="alpha"):
        draw_overlay(image, {1: mask}, alpha=1.5)


def test_outline_at_boundary_with_contrasting_halo():
    image, mask = _scene()
    dark, light = (0, 0, 128), (255, 255, 0)
    for color, halo in ((dark, (255, 255, 255)), (light, (0, 0, 0))):
        out = draw_overlay(image, {1: mask}, alpha=0.5, colors={1: color})
        # 2-px line inside the edge, in the object colour
        for y, x in [(5, 10), (6, 10), (14, 10), (13, 10), (10, 6), (10, 7), (10, 17), (10, 16)]:
            assert tuple(out[y, x]) == color, (y, x)
        # 1-px halo just outside, including the diagonal corner
        for y, x in [(4, 10), (15, 10), (10, 5), (10, 18), (4, 5), (15, 18)]:
            assert tuple(out[y, x]) == halo, (y, x)
        # interior is tinted (not the line colour), far outside untouched
        assert tuple(out[10, 10]) != color and tuple(out[10, 10]) != (GRAY,) * 3
        assert tuple(out[0, 0]) == (GRAY,) * 3 and tuple(out[3, 10]) == (GRAY,) * 3


def test_mask_touching_border_has_no_frame_outline():
    image = np.full((10, 10, 3), GRAY, dtype=np.uint8)
    mask = np.zeros((10, 10), dtype=bool)
    mask[:, :5] = True
    color = (0, 0, 200)
    out = draw_overlay(image, {1: mask}, colors={1: color})
    assert tuple(out[5, 4]) == color and tuple(out[5, 3]) == color  # edge at column 5
    assert tuple(out[5, 0]) != color  # the image's own left border is not outlined


def test_overlap_larger_id_on_top():
    image, mask = _scene()
    other = np.zeros_like(mask)
    other[8:12, 8:12] = True
    out = draw_overlay(image, {2: other, 1: mask}, colors={1: (0, 0, 255), 2: (255, 0, 0)})
    assert tuple(out[8, 10]) == (255, 0, 0)  # object 2's line over object 1's interior


def test_clicks_drawn():
    image = np.full((40, 40, 3), GRAY, dtype=np.uint8)
    out = draw_overlay(image, {}, points=[(10, 10, 1), (30.4, 20.2, 0), (500, 500, 1)])
    assert tuple(out[10, 10]) == POSITIVE_CLICK_COLOR
    assert tuple(out[20, 30]) == NEGATIVE_CLICK_COLOR
    assert tuple(out[10, 14]) == (255, 255, 255)  # rim just past radius 3
    assert tuple(out[0, 0]) == (GRAY,) * 3
    with pytest.raises(InvalidPromptError, match="labels"):
        draw_overlay(image, {}, points=[(1, 1, 2)])


def test_bad_inputs():
    image, mask = _scene()
    with pytest.raises(InvalidInputError, match="shape"):
        draw_overlay(image, {1: mask[:-1]})
    with pytest.raises(InvalidInputError, match="uint8"):
        draw_overlay(image.astype(np.float32), {1: mask})
    with pytest.raises(InvalidInputError, match="colours"):
        draw_overlay(image, {1: mask}, colors={1: (0, 300, 0)})


# ----- mask types ----------------------------------------------------------------------------


def _tiny():
    image = np.array(
        [[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [100, 110, 120]]], dtype=np.uint8
    )
    masks = {1: np.array([[1, 0], [0, 0]], bool), 2: np.array([[0, 0], [0, 1]], bool)}
    return image, masks


def test_binary_mask_type():
    image, masks = _tiny()
    out = render_mask_type(image, masks, "binary")
    expected = np.zeros((2, 2, 3), np.uint8)
    expected[0, 0] = expected[1, 1] = 255
    assert out.dtype == np.uint8 and np.array_equal(out, expected)


def test_greenscreen_mask_type():
    image, masks = _tiny()
    out = render_mask_type(image, masks, "greenscreen")
    assert np.array_equal(out[0, 0], [10, 20, 30]) and np.array_equal(out[1, 1], [100, 110, 120])
    assert np.array_equal(out[0, 1], [0, 255, 0]) and np.array_equal(out[1, 0], [0, 255, 0])


def test_highlighted_mask_type_is_the_overlay():
    image, masks = _tiny()
    out = render_mask_type(image, masks, "highlighted")
    assert np.array_equal(out, draw_overlay(image, masks))
    # 1-pixel objects are all outline: they take the object colour; the rest is the halo
    assert tuple(out[0, 0]) == object_color(1) and tuple(out[1, 1]) == object_color(2)


def test_empty_masks_and_unknown_type():
    image, _ = _tiny()
    assert not render_mask_type(image, {}, "binary").any()
    assert np.all(render_mask_type(image, {}, "greenscreen") == [0, 255, 0])
    with pytest.raises(InvalidInputError, match="binary, highlighted, greenscreen"):
        render_mask_type(image, {}, "sepia")
    assert MASK_TYPES == ("binary", "highlighted", "greenscreen")
