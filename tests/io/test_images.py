"""Image and mask files: formats, modes, EXIF orientation, errors and atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from masklet.errors import InvalidInputError
from masklet.io.images import read_image, read_mask, write_image

EXIF_ORIENTATION_TAG = 0x0112
ROTATE_90_CW = 6  # "the 0th row is the visual right-hand side": display rotated 90° clockwise


def _gradient(h: int = 12, w: int = 20) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 10, y * 20, (x + y) * 5], axis=2).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_lossless_round_trip(tmp_path, suffix):
    image = _gradient()
    path = tmp_path / f"img{suffix}"
    if suffix == ".webp":
        Image.fromarray(image).save(path, lossless=True)
    else:
        write_image(path, image)
    got = read_image(path)
    assert got.dtype == np.uint8 and got.shape == (12, 20, 3)
    assert np.array_equal(got, image)


def test_jpeg_round_trip_close(tmp_path):
    image = np.full((16, 16, 3), (200, 40, 90), dtype=np.uint8)
    write_image(tmp_path / "a.jpg", image)
    write_image(tmp_path / "b.JPEG", image, quality=50)
    for name in ("a.jpg", "b.JPEG"):
        got = read_image(tmp_path / name)
        assert got.shape == image.shape
        assert np.abs(got.astype(int) - image).max() <= 4
    with Image.open(tmp_path / "a.jpg") as f:
        assert f.format == "JPEG"


def test_exif_orientation_6_read_upright(tmp_path):
    stored = np.zeros((10, 30, 3), dtype=np.uint8)  # as stored: wide, red strip on the left
    stored[:, :5] = (255, 0, 0)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = ROTATE_90_CW
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    got = read_image(path)
    # Upright it is tall, and rotating clockwise puts the stored left edge at the top.
    assert got.shape == (30, 10, 3)
    assert got[:4, :, 0].min() > 200 and got[:4, :, 1:].max() < 60
    assert got[-10:, :, 0].max() < 60


def test_modes_converted_to_rgb(tmp_path):
    gray = (np.arange(64, dtype=np.uint8) * 4).reshape(8, 8)
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    got = read_image(tmp_path / "gray.png")
    assert got.shape == (8, 8, 3) and np.array_equal(got[..., 1], gray)

    rgba = np.dstack([_gradient(8, 8), np.full((8, 8), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(read_image(tmp_path / "rgba.png"), rgba[..., :3])

    pal = Image.fromarray(np.array([[0, 1], [1, 0]], dtype=np.uint8), "P")
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.save(tmp_path / "pal.png", transparency=0)
    assert np.array_equal(read_image(tmp_path / "pal.png")[0, 1], [10, 20, 30])

    wide = np.array([[0, 65535], [257 * 100, 257]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "gray16.png")
    got = read_image(tmp_path / "gray16.png")
    assert np.array_equal(got[..., 0], [[0, 255], [100, 1]])


def test_missing_directory_and_corrupt_files(tmp_path):
    with pytest.raises(InvalidInputError, match="not found.*nope.png"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(InvalidInputError, match="directory"):
        read_image(tmp_path)
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(InvalidInputError, match="text.png.*not a recognised"):
        read_image(tmp_path / "text.png")
    write_image(tmp_path / "full.png", _gradient(64, 64))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match="cut.png"):
        read_image(tmp_path / "cut.png")


def test_read_mask_nonzero_is_foreground(tmp_path):
    values = np.array([[0, 1, 255], [0, 0, 3]], dtype=np.uint8)
    Image.fromarray(values).save(tmp_path / "m.png")
    expected = values != 0
    got = read_mask(tmp_path / "m.png", size=(2, 3))
    assert got.dtype == np.bool_ and np.array_equal(got, expected)

    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 1] = (0, 0, 1)  # any channel counts
    rgb[1, 2] = (9, 9, 9)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert np.array_equal(read_mask(tmp_path / "rgb.png"), [[0, 1, 0], [0, 0, 1]])

    rgba = np.full((2, 3, 4), 255, dtype=np.uint8)
    rgba[0, 0, 3] = 0  # transparent -> background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(read_mask(tmp_path / "rgba.png"), [[0, 1, 1], [1, 1, 1]])

    # palette: the index counts, not the colour (index 1 may be drawn black)
    pal = Image.fromarray(np.array([[0, 1], [2, 0]], dtype=np.uint8))
    pal.putpalette([0, 0, 0] * 256)
    pal.save(tmp_path / "pal.png")
    assert np.array_equal(read_mask(tmp_path / "pal.png"), [[0, 1], [1, 0]])


def test_read_mask_size_mismatch(tmp_path):
    Image.fromarray(np.zeros((4, 5), dtype=np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(InvalidInputError, match=r"\(4, 5\).*\(5, 4\)"):
        read_mask(tmp_path / "m.png", size=(5, 4))


def test_write_bool_and_gray(tmp_path):
    mask = np.array([[True, False]])
    write_image(tmp_path / "mask.png", mask)
    with Image.open(tmp_path / "mask.png") as f:
        assert f.mode == "L"
        assert np.array_equal(np.asarray(f), [[255, 0]])


def test_write_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="suffix '.bmp'"):
        write_image(tmp_path / "x.bmp", _gradient())
    with pytest.raises(InvalidInputError, match="dtype"):
        write_image(tmp_path / "x.png", _gradient().astype(np.float32))
    with pytest.raises(InvalidInputError, match="shape"):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 4), dtype=np.uint8))
    with pytest.raises(InvalidInputError, match="quality"):
        write_image(tmp_path / "x.jpg", _gradient(), quality=0)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp files left


def test_write_is_atomic_and_replaces(tmp_path):
    path = tmp_path / "sub" / "out.png"
    write_image(path, np.zeros((2, 2, 3), dtype=np.uint8))
    write_image(path, np.full((2, 2, 3), 9, dtype=np.uint8))
    assert np.array_equal(read_image(path), np.full((2, 2, 3), 9))
    assert [p.name for p in path.parent.iterdir()] == ["out.png"]
