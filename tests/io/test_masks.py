"""Id maps, palette PNGs, COCO RLE and JSON records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from masklet.errors import InvalidInputError
from masklet.io.masks import (
    DAVIS_PALETTE,
    area,
    bbox_xywh,
    decode_rle,
    encode_rle,
    id_mask,
    mask_to_box,
    objects_to_coco,
    read_id_png,
    read_palette_png,
    write_id_png,
    write_json,
    write_palette_png,
)


def _box_mask(shape, y0, y1, x0, x1) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ----- id maps -------------------------------------------------------------------------------


def test_id_mask_overlap_higher_score_wins():
    a = _box_mask((4, 6), 0, 4, 0, 4)
    b = _box_mask((4, 6), 0, 4, 2, 6)
    out = id_mask({1: a, 2: b}, (4, 6), scores={1: 0.9, 2: 0.3})
    assert out.dtype == np.uint8
    assert np.array_equal(out[0], [1, 1, 1, 1, 2, 2])
    out = id_mask({1: a, 2: b}, (4, 6), scores={1: 0.3, 2: 0.9})
    assert np.array_equal(out[0], [1, 1, 2, 2, 2, 2])


def test_id_mask_without_scores_or_tied_larger_id_wins():
    a = _box_mask((2, 4), 0, 2, 0, 3)
    b = _box_mask((2, 4), 0, 2, 1, 4)
    for masks in ({7: a, 3: b}, {3: b, 7: a}):  # mapping order does not matter
        out = id_mask(masks, (2, 4))
        assert np.array_equal(out[0], [7, 7, 7, 3])
        tied = id_mask(masks, (2, 4), scores={3: 0.5, 7: 0.5})
        assert np.array_equal(tied, out)


def test_id_mask_empty_and_dtype():
    assert np.array_equal(id_mask({}, (2, 3)), np.zeros((2, 3)))
    assert id_mask({1: np.zeros((2, 3), bool)}, (2, 3)).max() == 0
    big = id_mask({300: _box_mask((2, 2), 0, 1, 0, 1)}, (2, 2))
    assert big.dtype == np.uint16 and big[0, 0] == 300


@pytest.mark.parametrize("bad_id", [0, -1, 65536])
def test_id_mask_rejects_bad_ids(bad_id):
    with pytest.raises(InvalidInputError, match="1..65535"):
        id_mask({bad_id: np.ones((2, 2), bool)}, (2, 2))


def test_id_mask_rejects_bad_shapes_and_missing_scores():
    with pytest.raises(InvalidInputError, match="shape"):
        id_mask({1: np.ones((3, 2), bool)}, (2, 2))
    with pytest.raises(InvalidInputError, match=r"missing for object ids \[2\]"):
        id_mask({1: np.ones((2, 2)), 2: np.ones((2, 2))}, (2, 2), scores={1: 1.0})


def test_id_png_round_trip_8_bit(tmp_path):
    id_map = np.random.default_rng(0).integers(0, 256, (9, 11)).astype(np.uint8)
    write_id_png(tmp_path / "ids.png", id_map)
    with Image.open(tmp_path / "ids.png") as f:
        assert f.mode == "L"
    got = read_id_png(tmp_path / "ids.png")
    assert got.dtype == np.uint8 and np.array_equal(got, id_map)


def test_id_png_round_trip_16_bit(tmp_path):
    id_map = np.random.default_rng(1).integers(0, 65536, (9, 11)).astype(np.int64)
    id_map[0, 0] = 65535
    write_id_png(tmp_path / "ids.png", id_map)
    with Image.open(tmp_path / "ids.png") as f:
        assert f.mode.startswith("I;16")
    got = read_id_png(tmp_path / "ids.png")
    assert got.dtype == np.uint16 and np.array_equal(got, id_map)


def test_id_png_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="0..65535"):
        write_id_png(tmp_path / "x.png", np.array([[70000]]))
    with pytest.raises(InvalidInputError, match="integer"):
        write_id_png(tmp_path / "x.png", np.zeros((2, 2), np.float32))
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(InvalidInputError, match="not an id map"):
        read_id_png(tmp_path / "rgb.png")


# ----- palette -------------------------------------------------------------------------------


def test_davis_palette_known_entries():
    assert DAVIS_PALETTE.shape == (256, 3) and DAVIS_PALETTE.dtype == np.uint8
    expected = {
        0: (0, 0, 0),
        1: (128, 0, 0),
        2: (0, 128, 0),
        3: (128, 128, 0),
        4: (0, 0, 128),
        15: (192, 128, 128),  # VOC "person"
        255: (224, 224, 192),  # VOC "void" border colour
    }
    for index, rgb in expected.items():
        assert tuple(DAVIS_PALETTE[index]) == rgb
    assert len({tuple(c) for c in DAVIS_PALETTE}) == 256  # all distinct


def test_palette_png_round_trip_and_colours(tmp_path):
    id_map = np.array([[0, 1, 2], [3, 4, 255]], dtype=np.uint8)
    write_palette_png(tmp_path / "p.png", id_map)
    with Image.open(tmp_path / "p.png") as f:
        assert f.mode == "P"
        rgb = np.asarray(f.convert("RGB"))
    assert np.array_equal(rgb, DAVIS_PALETTE[id_map])
    assert np.array_equal(read_palette_png(tmp_path / "p.png"), id_map)


def test_palette_png_falls_back_to_16_bit(tmp_path):
    id_map = np.array([[0, 1], [256, 1000]], dtype=np.uint16)
    write_palette_png(tmp_path / "p.png", id_map)
    with Image.open(tmp_path / "p.png") as f:
        assert f.mode.startswith("I;16")
    assert np.array_equal(read_palette_png(tmp_path / "p.png"), id_map)


# ----- COCO ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2
@pytest.mark.parametrize("seed", range(4))
def test_rle_round_trip_random(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 40, 2)
    mask = rng.random((h, w)) < rng.random()
    rle = encode_rle(mask)
    assert rle["size"] == [h, w] and isinstance(rle["counts"], str)
    json.dumps(rle)  # JSON-ready
    assert np.array_equal(decode_rle(rle), mask)
    # the string is ordinary COCO RLE
    coco = coco_mask.decode({"size": [h, w], "counts": rle["counts"].encode()})
    assert np.array_equal(coco.astype(bool), mask)


def test_decode_uncompressed_and_bytes_rle():
    mask = decode_rle({"size": [2, 2], "counts": [1, 2, 1]})  # column-major runs
    assert np.array_equal(mask, [[False, True], [True, False]])
    compressed = encode_rle(mask)
    assert np.array_equal(decode_rle({**compressed, "counts": compressed["counts"].encode()}), mask)
    with pytest.raises(InvalidInputError, match="'size' and 'counts'"):
        decode_rle({"counts": "x"})


def test_boxes_area_empty_and_pixel():
    empty = np.zeros((5, 5), bool)
    assert encode_rle(empty)["size"] == [5, 5] and not decode_rle(encode_rle(empty)).any()
    assert mask_to_box(empty) == [0.0, 0.0, 0.0, 0.0] and bbox_xywh(empty) == [0, 0, 0, 0]
    assert area(empty) == 0
    mask = _box_mask((10, 12), 2, 5, 3, 9)  # rows 2..4, cols 3..8
    assert mask_to_box(mask) == [3.0, 2.0, 8.0, 4.0]
    assert bbox_xywh(mask) == [3.0, 2.0, 6.0, 3.0]
    assert bbox_xywh(mask) == list(
        coco_mask.toBbox(coco_mask.encode(np.asfortranarray(mask.astype(np.uint8))))
    )
    assert area(mask) == 18


def test_objects_to_coco_records():
    masks = {2: _box_mask((6, 6), 0, 2, 0, 3), 1: _box_mask((6, 6), 4, 6, 4, 6)}
    records = objects_to_coco(masks, scores={1: 0.5, 2: 0.75}, names={2: "dog"}, frame_index=7)
    assert [r["id"] for r in records] == [1, 2]
    first, second = records
    assert first["name"] == "object_1" and second["name"] == "dog"
    assert first["score"] == 0.5 and second["score"] == 0.75
    assert second["bbox"] == [0.0, 0.0, 3.0, 2.0] and second["area"] == 6
    assert np.array_equal(decode_rle(second["segmentation"]), masks[2])
    assert first["frame_index"] == 7
    plain = objects_to_coco(masks)
    assert plain[0]["score"] is None and "frame_index" not in plain[0]


def test_write_json_atomic_with_numpy_values(tmp_path):
    path = tmp_path / "out" / "objects.json"
    payload = {"records": objects_to_coco({1: np.ones((2, 2), bool)}), "n": np.int64(3)}
    write_json(path, payload)
    loaded = json.loads(path.read_text())
    assert loaded["n"] == 3 and loaded["records"][0]["area"] == 4
    assert [p.name for p in path.parent.iterdir()] == ["objects.json"]
    with pytest.raises(InvalidInputError, match="JSON"):
        write_json(path, {"bad": object()})
    assert json.loads(path.read_text())["n"] == 3  # old file kept on failure
