"""The web page's RLE decoder (static/rle.js) against pycocotools, run with node if present."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from masklet.io.masks import encode_rle

RLE_JS = Path(__file__).parents[2] / "src/masklet/server/static/rle.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_rle_decoder_matches_pycocotools(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    speckled = np.zeros((37, 53), bool)
    speckled[5:30, 10:40] = True
    speckled[rng.random(speckled.shape) < 0.1] ^= True  # many short runs
    large = np.zeros((300, 500), bool)  # long runs need multi-character counts
    large[10:290, 3:480] = True
    large[100, :] = False
    masks = [speckled, large, np.zeros((4, 5), bool), np.ones((4, 5), bool)]
    script = tmp_path / "decode.mjs"
    script.write_text(
        f"import {{ decodeRle }} from {json.dumps(RLE_JS.as_uri())};\n"
        f"const cases = {json.dumps([encode_rle(m) for m in masks])};\n"
        "console.log(JSON.stringify(cases.map((c) => Array.from(decodeRle(c)))));\n"
    )
    result = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for mask, decoded in zip(masks, json.loads(result.stdout)):
        np.testing.assert_array_equal(np.asarray(decoded, bool).reshape(mask.shape), mask)
