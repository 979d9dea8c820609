"""Helpers for the real-browser test: a uvicorn server in a thread, Chromium flags, canvas reads."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import uvicorn
from pycocotools import mask as coco_mask

from masklet.modeling.sam2 import SAM2Model
from masklet.server.app import create_app
from masklet.server.settings import ServerSettings

if TYPE_CHECKING:  # Playwright is optional: the browser test skips without it
    from playwright.sync_api import FloatRect, Page

CHROMIUM_ARGS = (
    "--no-sandbox",  # root in a container: the setuid sandbox is unavailable
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # no traffic beyond the loopback server under test
    "--disable-component-update",
    "--disable-sync",
)
SERVER_START_SECONDS = 30.0
SERVER_STOP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    model: SAM2Model, data_dir: Path, lifetime: float, **settings: Any
) -> Iterator[str]:
    """A real uvicorn server with `model` (and `settings`) on 127.0.0.1 and a free port;
    yields its base URL.

    It runs in a daemon thread and exits after `lifetime` seconds even if the caller never
    returns, so a hung test cannot leave a server behind.
    """
    port = free_port()
    app = create_app(
        ServerSettings(port=port, data_dir=data_dir, model_factory=lambda _: model, **settings)
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="masklet-test-server", daemon=True)
    stopper = threading.Timer(lifetime, lambda: setattr(server, "should_exit", True))
    stopper.daemon = True
    thread.start()
    stopper.start()
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the test server exited while starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start in {SERVER_START_SECONDS} s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        stopper.cancel()
        server.should_exit = True
        thread.join(SERVER_STOP_SECONDS)


# How many pixels of the frame canvas are not black (0 before a frame is drawn).
LIT_FRAME_PIXELS = """() => {
  const c = document.getElementById("frame");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let lit = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 0) lit++;
  return lit;
}"""

# Compares the overlay canvas pixel by pixel with `expected` (a flat 0/1 array, row-major, the
# union of the frame's masks decoded in Python from the API's RLE, not by the page's rle.js),
# away from the prompt marker at `point`: a mask pixel must carry `rgb` half-transparent, any
# other pixel must be clear. Canvases store premultiplied alpha, so read-back colours may be
# off by a rounding step. Returns null while the page has not decoded the frame's masks.
COMPARE_OVERLAY = """([frame, expected, [px, py], guard, [r, g, b]]) => {
  const c = document.getElementById("overlay");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const masks = window.masklet.state.masks.get(frame);
  for (const m of (masks ? masks.values() : [])) if (!m.pixels) return null;
  if (expected.length !== c.width * c.height) return { sizeMismatch: expected.length };
  const near = (a, e) => Math.abs(a - e) <= 2;
  let checked = 0, maskPixels = 0, wrong = 0, painted = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = d[4 * i + 3];
    if (a) painted++;
    const x = i % c.width, y = Math.floor(i / c.width);
    if ((x - px) ** 2 + (y - py) ** 2 <= guard * guard) continue;
    checked++;
    if (expected[i]) {
      maskPixels++;
      if (!(near(d[4 * i], r) && near(d[4 * i + 1], g) && near(d[4 * i + 2], b) && near(a, 128))) wrong++;
    } else if (a) wrong++;
  }
  return { checked, maskPixels, wrong, painted };
}"""


def api_union_mask(base_url: str, session_id: str, frame: int) -> list[int]:
    """The union of `frame`'s masks as the API serves them, decoded with pycocotools, as a flat
    row-major 0/1 list for COMPARE_OVERLAY."""
    with urllib.request.urlopen(f"{base_url}/v1/sessions/{session_id}/masks/{frame}") as reply:
        objects = json.load(reply)["objects"]
    union = None
    for obj in objects:
        rle = dict(obj["mask"])
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        mask = coco_mask.decode(rle).astype(bool)  # [H, W], Fortran order inside pycocotools
        union = mask if union is None else union | mask
    assert union is not None, f"the API has no masks for frame {frame}"
    return [int(v) for v in union.reshape(-1)]


OBJECT_PRESENT_LOGIT = 10.0  # "visible" for sure: the decoder's own masks are kept


def show_random_masks(model: SAM2Model) -> SAM2Model:
    """Make a random-weight model call every object present.

    Random weights usually give a negative "is the object visible" score, which blanks every
    mask; a zero-weight, positive-bias last layer of that head keeps the decoder's (random,
    meaningless, but real) masks.
    """
    head = model.sam_mask_decoder.pred_obj_score_head
    last = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(OBJECT_PRESENT_LOGIT)
    return model


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    value = int(color.lstrip("#"), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def to_screen(
    box: FloatRect, size: tuple[int, int], point: tuple[float, float]
) -> tuple[float, float]:
    """Video pixel `point` (x, y) -> page coordinates on a canvas shown in `box` (its bounding
    box) for a video of `size` (width, height); aims at the pixel's centre."""
    width, height = size
    x, y = point
    return (
        box["x"] + (x + 0.5) * box["width"] / width,
        box["y"] + (y + 0.5) * box["height"] / height,
    )


def wait_for_page(page: Page, condition: str) -> None:
    """Wait until the JavaScript expression `condition` holds, failing at once (with the page's
    message) if the page shows an error status instead of waiting out the timeout."""
    page.wait_for_function(
        f"() => ({condition}) || document.getElementById('status').classList.contains('error')"
    )
    status = page.locator("#status")
    if "error" in (status.get_attribute("class") or ""):
        raise AssertionError(f"the page shows an error: {status.text_content()}")


# Compares the overlay canvas with several objects' masks: `expected` is a flat row-major list
# of 1-based indices into `colors` ([r, g, b] per object, 0 = no mask; decoded in Python from
# the API's RLE). A pixel with index k must carry colors[k - 1] half-transparent, any other
# pixel must be clear (no prompt marker is drawn for found objects). Returns null while the
# page has not decoded the frame's masks; else the pixels drawn right per object and the
# wrong ones.
COMPARE_OBJECTS = """([frame, expected, colors]) => {
  const c = document.getElementById("overlay");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const masks = window.masklet.state.masks.get(frame);
  if (!masks) return null;
  for (const m of masks.values()) if (!m.pixels) return null;
  if (expected.length !== c.width * c.height) return { sizeMismatch: expected.length };
  const near = (a, e) => Math.abs(a - e) <= 2;
  const right = colors.map(() => 0);
  let wrong = 0;
  for (let i = 0; i < expected.length; i++) {
    const k = expected[i], a = d[4 * i + 3];
    if (!k) { if (a) wrong++; continue; }
    const [r, g, b] = colors[k - 1];
    if (near(d[4 * i], r) && near(d[4 * i + 1], g) && near(d[4 * i + 2], b) && near(a, 128)) right[k - 1]++;
    else wrong++;
  }
  return { right, wrong };
}"""


def decode_api_masks(objects: list[dict[str, Any]]) -> dict[int, Any]:
    """Object id -> [H, W] bool mask of API mask records, decoded with pycocotools."""
    out = {}
    for obj in objects:
        rle = dict(obj["mask"])
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        out[obj["id"]] = coco_mask.decode(rle).astype(bool)  # [H, W]
    return out


def index_map(masks: dict[int, Any], order: list[int]) -> list[int]:
    """A flat row-major list for COMPARE_OBJECTS: 1 + the position in `order` of the object
    whose mask holds the pixel, 0 where none does (the API's masks do not overlap)."""
    first = next(iter(masks.values()))
    flat = [0] * first.size
    for k, obj_id in enumerate(order, start=1):
        for i in masks[obj_id].reshape(-1).nonzero()[0].tolist():
            flat[i] = k
    return flat
