"""The web page in a real browser: Debian's Chromium driven by Playwright against a real uvicorn
server (the bundled nano model) on 127.0.0.1.

Open the demo video, click the object, see its mask drawn, track to the end with the `t` key,
export the overlay MP4 and decode it. The canvas is compared with the API's masks decoded in
Python (pycocotools), not with the page's own decoder. Skips when Chromium or Playwright is missing
(CI: `apt-get install -y chromium`, `pip install playwright`; never `playwright install`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import av
import httpx
import numpy as np
import pytest

from masklet.checkpoints import load_model
from masklet.modeling.sam2 import SAM2Model
from masklet.train.synthetic import demo_config, make_demo_video, make_video
from tests.server.browser_helpers import (
    CHROMIUM_ARGS,
    COMPARE_OBJECTS,
    COMPARE_OVERLAY,
    LIT_FRAME_PIXELS,
    api_union_mask,
    decode_api_masks,
    hex_to_rgb,
    index_map,
    running_server,
    to_screen,
    wait_for_page,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs Playwright: pip install playwright"
)
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's Chromium: apt-get install -y chromium"
)

ROOT = Path(__file__).parents[2]
SCREENSHOT = ROOT / "artifacts" / "web-ui.png"
NUM_FRAMES, SIZE, FPS = 24, (256, 192), 24
SERVER_LIFETIME_SECONDS = 120  # the server stops by itself after this, whatever happens
STEP_TIMEOUT_MS = 30_000  # any one step (upload, click, tracking, export) waits at most this
# the prompt's point marker (radius 3, a 1-pixel outline, antialiased) hides the mask near it
MARKER_GUARD_PIXELS = 6
FAR_PIXELS = 10_000
# segment everything with the nano model: its masks score at most ~0.82 predicted IoU and ~0.79
# stability, under the reference's defaults the page starts with (0.8, 0.95); a person lowers
# them in the page's settings, and so does the test
EVERYTHING = {"points_per_side": 16, "pred_iou_thresh": 0.5, "stability_score_thresh": 0.5}
EVERYTHING_INPUTS = {
    "#everything-points": "points_per_side",
    "#everything-iou": "pred_iou_thresh",
    "#everything-stability": "stability_score_thresh",
}
MIN_TRACKED_IOU = 0.6  # one frame on (nano: ~0.74..0.76)
DEMO_FRAMES = 8  # the clip's length shapes its objects: frame 0 of 8 has two distinct ones
MIN_REGION_IOU = 0.8  # each of the clip's two objects is one region (nano: ~0.86..0.89)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model: SAM2Model = load_model("masklet-nano-synthetic").eval()
    data = tmp_path_factory.mktemp("browser-server")
    with running_server(model, data, SERVER_LIFETIME_SECONDS) as url:
        yield url


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    """A page in a headless Chromium with a fresh profile; fails the test on any script error."""
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=list(CHROMIUM_ARGS),
            accept_downloads=True,
            viewport={"width": 1100, "height": 640},
        )
        context.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on(
                "response",
                lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            yield page
        finally:
            context.close()
    assert not errors, f"the page reported errors: {errors}"


def test_click_track_export_in_chromium(server: str, page: Page, tmp_path: Path) -> None:
    began = time.monotonic()
    video = tmp_path / "demo.mp4"
    clicks = make_demo_video(video, seed=0, num_frames=NUM_FRAMES, size=SIZE, fps=FPS)

    page.goto(server)
    page.wait_for_function("() => window.masklet !== undefined")
    page.set_input_files("#file", str(video))
    wait_for_page(page, "window.masklet.state.frames.has(0)")  # frame 0 is shown
    session = page.evaluate("() => window.masklet.state.session")
    assert (session["width"], session["height"]) == SIZE
    assert session["num_frames"] == NUM_FRAMES
    assert page.locator("#video-tools").is_visible() and page.locator("#player").is_visible()
    assert page.evaluate(LIT_FRAME_PIXELS) > 0, "the video frame was not drawn"

    obj_id, point = min(clicks.items())
    rgb = list(hex_to_rgb(page.evaluate("() => window.masklet.state.objects[0].color")))
    nothing = [0] * (SIZE[0] * SIZE[1])
    before = page.evaluate(COMPARE_OVERLAY, [0, nothing, list(point), MARKER_GUARD_PIXELS, rgb])
    assert before["painted"] == 0  # nothing clicked yet

    box = page.locator("#overlay").bounding_box()
    assert box is not None
    x, y = to_screen(box, SIZE, point)
    page.mouse.click(x, y)
    wait_for_page(page, "window.masklet.state.masks.has(0)")
    prompt = page.evaluate("() => window.masklet.state.prompts.get('0:1')")
    assert prompt["points"] == [list(point)], "the click landed on another video pixel"
    expected = api_union_mask(server, session["id"], 0)
    assert 100 < sum(expected) < len(expected) // 2, "the API's mask is empty or everything"
    drawn = page.evaluate(COMPARE_OVERLAY, [0, expected, list(point), MARKER_GUARD_PIXELS, rgb])
    assert drawn is not None and drawn["maskPixels"] > 100, drawn
    assert drawn["wrong"] == 0, f"the canvas differs from the masks: {drawn}"

    page.keyboard.press("t")  # the shortcut for the Track button
    wait_for_page(
        page,
        "document.getElementById('progress').value === 1 && !window.masklet.state.tracking"
        " && !document.getElementById('track').disabled",
    )
    assert (page.locator("#status").text_content() or "").startswith("tracked ")
    tracked = page.evaluate("() => [...window.masklet.state.masks.keys()].sort((a, b) => a - b)")
    assert tracked == list(range(NUM_FRAMES))
    # the view ends on the last tracked frame (forward from frame 0: the last one)
    wait_for_page(page, f"window.masklet.state.frame === {NUM_FRAMES - 1}")
    assert page.locator("#frame-label").text_content() == f"{NUM_FRAMES - 1} / {NUM_FRAMES - 1}"

    with page.expect_download() as download_info:
        page.click("[data-export=mp4]")
    exported = tmp_path / "overlay.mp4"
    download_info.value.save_as(exported)
    wait_for_page(page, "document.getElementById('status').textContent === 'exported mp4'")
    with av.open(str(exported)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == NUM_FRAMES
    assert (frames[0].width, frames[0].height) == SIZE

    last = NUM_FRAMES - 1  # scrub to a tracked frame: its masks are drawn, and nothing else
    page.locator("#slider").fill(str(last))
    wait_for_page(
        page, f"window.masklet.state.frame === {last} && window.masklet.state.frames.has({last})"
    )
    far_away = [-FAR_PIXELS, -FAR_PIXELS]  # no prompt marker on this frame
    expected_last = api_union_mask(server, session["id"], last)
    assert sum(expected_last) > 100 and expected_last != expected  # tracked, and it moved
    shown = page.evaluate(COMPARE_OVERLAY, [last, expected_last, far_away, 0, rgb])
    assert shown is not None, "the page did not decode the last frame's masks"
    assert shown["wrong"] == 0, f"frame {last} differs from its tracked masks: {shown}"
    assert page.locator("#frame-label").text_content() == f"{last} / {last}"
    # the screenshot shows this frame with its tracked mask

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 0
    print(
        f"\nbrowser test: {time.monotonic() - began:.1f} s; mask pixels on frame 0:"
        f" {drawn['maskPixels']}, on frame {last}: {shown['maskPixels']}"
    )


def test_closing_the_page_deletes_its_session(server: str, page: Page, tmp_path: Path) -> None:
    video = tmp_path / "demo.mp4"
    make_demo_video(video, seed=1, num_frames=4, size=SIZE, fps=FPS)
    page.goto(server)
    page.wait_for_function("() => window.masklet !== undefined")
    page.set_input_files("#file", str(video))
    wait_for_page(page, "window.masklet.state.frames.has(0)")
    sid = page.evaluate("() => window.masklet.state.session.id")
    assert httpx.get(f"{server}/v1/sessions/{sid}").status_code == 200
    # a small video is scaled up to the page, keeping its shape
    shown = page.locator("#frame").bounding_box()
    assert shown is not None and shown["width"] > SIZE[0] * 1.5, shown
    assert abs(shown["width"] / shown["height"] - SIZE[0] / SIZE[1]) < 0.02, shown
    page.goto("about:blank")  # pagehide: the page deletes its session on the way out
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while httpx.get(f"{server}/v1/sessions/{sid}").status_code != 404:
        assert time.monotonic() < deadline, "the session outlived its page"
        time.sleep(0.1)


def test_a_failed_open_clears_the_page_and_the_same_file_reopens(
    tmp_path: Path, tiny_model: SAM2Model
) -> None:
    """Issue 17, point 13: after a 401 nothing stale stays usable; entering the key and choosing
    the same file again opens it; the key stays in the tab unless "remember" is ticked."""
    key = "key-alpha-123"
    video = tmp_path / "demo.mp4"
    make_demo_video(video, seed=2, num_frames=4, size=SIZE, fps=FPS)
    with (
        running_server(
            tiny_model, tmp_path / "data", SERVER_LIFETIME_SECONDS, api_keys=(key,)
        ) as url,  # fmt: skip
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(STEP_TIMEOUT_MS)
            uploads: list[int] = []
            page.on(
                "response",
                lambda r: uploads.append(r.status) if r.url.endswith("/v1/sessions") else None,
            )
            page.goto(url)
            page.wait_for_function("() => window.masklet !== undefined")
            page.set_input_files("#file", str(video))
            page.wait_for_function(
                "() => document.getElementById('status').textContent.includes('API key')"
            )
            assert uploads == [401]
            for tool in ("#player", "#video-tools", "#exports-video", "#exports-image"):
                assert not page.locator(tool).is_visible(), tool
            assert page.evaluate("() => document.getElementById('frame').width") == 0
            assert page.evaluate("() => window.masklet.state.session") is None

            page.fill("#api-key", key)
            page.dispatch_event("#api-key", "change")
            page.set_input_files("#file", str(video))  # the same file again
            page.wait_for_function("() => window.masklet.state.frames.has(0)")
            assert uploads == [401, 201]
            assert page.locator("#video-tools").is_visible()
            stored = "() => [sessionStorage.getItem('masklet-api-key'), localStorage.getItem('masklet-api-key')]"
            assert page.evaluate(stored) == [key, None]  # this tab only, by default
            page.check("#remember-key")
            assert page.evaluate(stored) == [key, key]
            symbols = [page.locator(b).text_content() for b in ("#play", "#prev", "#next")]
            assert len(set(symbols)) == 3, symbols

            # an image the browser cannot decode: the page shows the server's message
            bad = tmp_path / "broken.png"
            bad.write_bytes(b"this is not an image at all")
            expected = httpx.post(
                f"{url}/v1/images:segment", headers={"Authorization": f"Bearer {key}"},
                files={"image": ("broken.png", bad.read_bytes())},
                data={"prompts": '{"objects": [{"id": 1, "points": [[0, 0]]}]}'},
            ).json()["error"]["message"]  # fmt: skip
            page.set_input_files("#file", str(bad))
            page.wait_for_function(
                "m => document.getElementById('status').textContent === m", arg=expected
            )
            assert not page.locator("#exports-image").is_visible()
        finally:
            browser.close()


# ---- segment everything (issue 18, point 4) --------------------------------------------------


def demo_truth(seed: int, num_frames: int) -> np.ndarray:
    """[T, K, H, W] bool: the true masks of the clip `make_demo_video` writes."""
    config = dataclasses.replace(demo_config(num_frames, SIZE), use_photos=False)
    return make_video(seed, config).masks.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def segment_everything(page: Page) -> None:
    """Set the page's segment-everything settings to EVERYTHING and press the button."""
    page.click("#everything summary")  # the settings are folded away
    for selector, key in EVERYTHING_INPUTS.items():
        page.fill(selector, str(EVERYTHING[key]))
    page.click("#segment-everything")
    wait_for_page(
        page, "window.masklet.state.masks.has(window.masklet.state.frame) && "
        "!document.getElementById('segment-everything').disabled",
    )  # fmt: skip


def assert_drawn(page: Page, frame: int, masks: dict[int, np.ndarray]) -> list[int]:
    """Every pixel of every object's mask (decoded in Python) carries the object's colour on the
    canvas, and nothing else is painted; returns the pixels drawn per object."""
    order = sorted(masks)
    colors = [
        list(hex_to_rgb(page.evaluate(
            "id => window.masklet.state.objects.find((o) => o.id === id).color", obj_id
        )))
        for obj_id in order
    ]  # fmt: skip
    drawn = page.evaluate(COMPARE_OBJECTS, [frame, index_map(masks, order), colors])
    assert drawn is not None, "the page did not decode the masks"
    assert drawn["wrong"] == 0, f"the canvas differs from the masks: {drawn}"
    assert drawn["right"] == [int(masks[i].sum()) for i in order]
    return list(drawn["right"])


def test_segment_everything_on_an_image_in_chromium(
    server: str, page: Page, tmp_path: Path
) -> None:
    image = tmp_path / "frame0.png"
    make_demo_video(tmp_path / "demo.mp4", seed=0, num_frames=DEMO_FRAMES, size=SIZE, fps=FPS,
                    image_path=image)  # fmt: skip
    truth = demo_truth(0, DEMO_FRAMES)[0]  # [K, H, W]
    page.goto(server)
    page.wait_for_function("() => window.masklet !== undefined")
    page.set_input_files("#file", str(image))
    wait_for_page(page, "window.masklet.state.image !== null")
    segment_everything(page)

    objects = page.evaluate("() => window.masklet.state.objects.map((o) => [o.id, o.name])")
    assert objects == [[1, "region_1"], [2, "region_2"]], objects  # took over the empty object_1
    assert page.locator("#objects li").count() == 2
    # the page's masks are the API's answer to the same request (decoded here, not by rle.js)
    reply = httpx.post(
        f"{server}/v1/images:segment", files={"image": ("frame0.png", image.read_bytes())},
        data={"prompts": json.dumps({"objects": [], "everything": EVERYTHING})},
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    masks = decode_api_masks(reply.json()["objects"])
    assert sorted(masks) == [1, 2]
    for true_mask in truth:
        assert max(iou(true_mask, m) for m in masks.values()) >= MIN_REGION_IOU
    drawn = assert_drawn(page, 0, masks)
    assert min(drawn) > 500, drawn

    # an ordinary object: removing it re-segments the image without it
    page.click("#objects li[data-id='2'] button")
    wait_for_page(page, "window.masklet.state.masks.get(0).size === 1")
    left = page.evaluate("() => [...window.masklet.state.masks.get(0).keys()]")
    assert left == [1]
    kept = page.evaluate("() => window.masklet.state.prompts.get('0:1')")
    assert kept["box"] is not None and kept["points"] == []  # its prompt: the region's box


def test_segment_everything_on_a_video_frame_in_chromium(
    server: str, page: Page, tmp_path: Path
) -> None:
    frames = DEMO_FRAMES
    video = tmp_path / "demo.mp4"
    make_demo_video(video, seed=0, num_frames=frames, size=SIZE, fps=FPS)
    truth = demo_truth(0, frames)  # [T, K, H, W]
    page.goto(server)
    page.wait_for_function("() => window.masklet !== undefined")
    page.set_input_files("#file", str(video))
    wait_for_page(page, "window.masklet.state.frames.has(0)")
    sid = page.evaluate("() => window.masklet.state.session.id")
    segment_everything(page)

    info = httpx.get(f"{server}/v1/sessions/{sid}").json()
    names = {o["id"]: o["name"] for o in info["objects"]}
    assert names == {1: "region_1", 2: "region_2"}
    shown = page.evaluate("() => window.masklet.state.objects.map((o) => [o.id, o.name])")
    assert dict(shown) == names
    masks = decode_api_masks(httpx.get(f"{server}/v1/sessions/{sid}/masks/0").json()["objects"])
    for true_mask in truth[0]:
        assert max(iou(true_mask, m) for m in masks.values()) >= MIN_REGION_IOU
    assert min(assert_drawn(page, 0, masks)) > 500

    page.keyboard.press("t")  # the regions track like clicked objects
    wait_for_page(
        page,
        "document.getElementById('progress').value === 1 && !window.masklet.state.tracking",
    )
    last = frames - 1
    wait_for_page(page, f"window.masklet.state.frame === {last}")
    tracked = decode_api_masks(
        httpx.get(f"{server}/v1/sessions/{sid}/masks/{last}").json()["objects"]
    )
    assert sorted(tracked) == [1, 2] and all(m.any() for m in tracked.values())
    assert_drawn(page, last, tracked)
    # each region follows the object it was found on (checked on the next frame: on this short
    # clip the nano model drifts later on, with clicked objects alike)
    following = decode_api_masks(httpx.get(f"{server}/v1/sessions/{sid}/masks/1").json()["objects"])
    for obj_id, mask in masks.items():
        k = max(range(len(truth[0])), key=lambda j: iou(truth[0][j], mask))
        overlaps = [iou(t, following[obj_id]) for t in truth[1]]
        assert max(overlaps) == overlaps[k] >= MIN_TRACKED_IOU, (obj_id, overlaps)

    # renamed and removed through the page: the session follows
    page.fill("#objects li[data-id='1'] input[type=text]", "ball")
    page.dispatch_event("#objects li[data-id='1'] input[type=text]", "change")
    page.click("#objects li[data-id='2'] button")
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while (objects := httpx.get(f"{server}/v1/sessions/{sid}").json()["objects"]) != [
        {"id": 1, "name": "ball"}
    ]:
        assert time.monotonic() < deadline, objects
        time.sleep(0.1)
