"""Issue 17, points 4, 10, 11 and 12: hostile or odd requests get a 4xx naming the problem,
the schema is complete, links never come from the Host header, /docs works offline."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from masklet.checkpoints import resolve_model_name
from masklet.server.app import create_app
from masklet.server.settings import ServerSettings
from tests.server.conftest import FRAMES, HEIGHT, WIDTH, AppFactory
from tests.server.test_api import new_session, segment
from tests.server.test_predictions import data_uri

DEEP = 100_000  # levels of [[[...]]]: Python's parser recursion gives up far earlier


def deep_json(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_deep_json_bodies_answer_413_naming_the_limit(
    client: TestClient, image_bytes: bytes, video_bytes: bytes
) -> None:
    sid = new_session(client, video_bytes)
    headers = {"Content-Type": "application/json"}
    bodies = {
        "/predictions": deep_json(DEEP),
        f"/v1/sessions/{sid}/prompts": deep_json(DEEP),
        f"/v1/sessions/{sid}/propagate": '{"a": ' + deep_json(DEEP) + "}",
    }
    for path, body in bodies.items():
        response = client.post(path, content=body, headers=headers)
        assert response.status_code == 413, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "limit_exceeded" and error["field"] == "body"
        assert "nested deeper than" in error["message"]
    # also without a Content-Type (FastAPI parses such a body as JSON too)
    plain = client.post(f"/v1/sessions/{sid}/clear", content=deep_json(DEEP))
    assert plain.status_code == 413, plain.text
    # the image route's JSON form field is checked the same way
    image = segment(client, image_bytes, deep_json(DEEP))
    assert image.status_code == 413 and image.json()["error"]["field"] == "prompts"
    # a JSON body over the size limit (1 MB) is refused before parsing
    huge = json.dumps({"frame": 0, "object_id": 1, "points": [[1.5, 2.5]] * 100_000})
    big = client.post(f"/v1/sessions/{sid}/prompts", content=huge, headers=headers)
    assert big.status_code == 413 and "JSON bytes" in big.json()["error"]["message"]
    # strings do not count as depth: brackets inside a string are fine
    named = {"frame": 0, "object_id": 1, "points": [[20, 20]], "name": "[[[[" * 40}
    assert client.post(f"/v1/sessions/{sid}/prompts", json=named).status_code == 200


def test_json_limits_are_settings_named_in_the_413(
    make_client: AppFactory, image_bytes: bytes, video_bytes: bytes
) -> None:
    """--max-json-depth / --max-json-bytes bound bodies and JSON form fields; the 413 names
    the flag, and raising the setting lets the same request through."""
    strict = make_client(max_json_depth=3, max_json_bytes=300)
    sid = new_session(strict, video_bytes)
    three = {"frame": 0, "object_id": 1, "points": [[20, 20]]}  # {[[ ]]}: 3 levels
    assert strict.post(f"/v1/sessions/{sid}/prompts", json=three).status_code == 200
    deep = strict.post(f"/v1/sessions/{sid}/prompts", content=deep_json(4))
    assert deep.status_code == 413, deep.text
    assert "masklet serve --max-json-depth raises it" in deep.json()["error"]["message"]
    form = segment(strict, image_bytes, deep_json(4))
    assert form.status_code == 413 and form.json()["error"]["field"] == "prompts"
    assert "--max-json-depth" in form.json()["error"]["message"]
    long = {**three, "points": [[20, 20]] * 40}  # 400+ bytes
    big = strict.post(f"/v1/sessions/{sid}/prompts", json=long)
    assert big.status_code == 413, big.text
    assert "masklet serve --max-json-bytes raises it" in big.json()["error"]["message"]
    # the same requests pass a server whose settings allow them (default depth 32 < 40)
    lenient = make_client(max_json_depth=64, max_json_bytes=10_000)
    sid = new_session(lenient, video_bytes)
    assert lenient.post(f"/v1/sessions/{sid}/prompts", json=long).status_code == 200
    nested = lenient.post(f"/v1/sessions/{sid}/prompts", content=deep_json(40))
    assert nested.status_code == 422, nested.text  # parsed: not a prompt, but not refused


def test_predictions_json_carries_a_large_video_checked_for_depth_only(
    client: TestClient, video_bytes: bytes
) -> None:
    padded = video_bytes + b"\0" * (1 << 20)  # a data: URI over the 1 MB JSON limit
    body = {"input": {"input_video": data_uri(padded), "click_coordinates": "[20,20]"}}
    response = client.post("/predictions", json=body)
    assert response.status_code != 413, response.text  # the size of a video is not JSON's limit


def resolve(schema: dict[str, Any], ref: str) -> Any:
    node: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_every_schema_reference_resolves(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    found = refs(schema)
    assert "#/components/schemas/PredictionRequest" in found
    for ref in found:
        assert isinstance(resolve(schema, ref), dict), ref
    body = schema["paths"]["/predictions"]["post"]["requestBody"]["content"]["application/json"]
    target = resolve(schema, body["schema"]["$ref"])
    assert target["properties"]["input"]["$ref"] == "#/components/schemas/PredictionInput"
    assert "click_coordinates" in schema["components"]["schemas"]["PredictionInput"]["properties"]


def test_schema_says_whether_the_api_key_is_required(
    make_client: AppFactory, video_bytes: bytes
) -> None:
    """A server without keys documents the bearer key as optional (`{}` among the security
    requirements) and answers without it; a server with keys documents it as required."""
    key = "a-long-enough-key"
    for keys, required in (((), False), ((key,), True)):
        client = make_client(api_keys=keys)
        schema = client.get("/openapi.json").json()
        create = schema["paths"]["/v1/sessions"]["post"]
        assert {"HTTPBearer": []} in create["security"]
        assert ({} not in create["security"]) is required
        anonymous = client.post("/v1/sessions", files={"video": ("v.mp4", video_bytes)})
        assert anonymous.status_code == (401 if required else 201), anonymous.text


def test_links_come_from_public_url_never_from_host(
    make_client: AppFactory, video_bytes: bytes
) -> None:
    body = {"input": {"input_video": data_uri(video_bytes), "click_coordinates": "[20,20]",
                      "output_video": True}}  # fmt: skip
    evil = {"Host": "evil.example"}
    relative = make_client()
    urls = relative.post("/predictions", json=body, headers=evil).json()["output"]
    assert len(urls) == 1 and urls[0].startswith("/v1/files/"), urls
    assert relative.get(urls[0]).status_code == 200

    public = make_client(public_url="https://masks.example.org/")
    urls = public.post("/predictions", json=body, headers=evil).json()["output"]
    assert urls[0].startswith("https://masks.example.org/v1/files/"), urls
    sid = new_session(public, video_bytes)
    prompt = {"frame": 0, "object_id": 1, "points": [[20, 20]]}
    assert public.post(f"/v1/sessions/{sid}/prompts", json=prompt).status_code == 200
    export = public.post(f"/v1/sessions/{sid}/export", json={"format": "coco"}, headers=evil)
    assert export.json()["url"].startswith("https://masks.example.org/v1/files/")


def test_frame_indices_outside_the_video_answer_422(client: TestClient, video_bytes: bytes) -> None:
    sid = new_session(client, video_bytes)
    assert client.get(f"/v1/sessions/{sid}/masks/0").status_code == 200
    for resource in ("masks", "frames"):
        for index in (-5, FRAMES, 1_000_000_000):
            response = client.get(f"/v1/sessions/{sid}/{resource}/{index}")
            assert response.status_code == 422, (resource, index, response.text)
            assert response.json()["error"]["field"].endswith("index")


def test_booleans_and_strings_are_not_numbers(
    client: TestClient, image_bytes: bytes, video_bytes: bytes
) -> None:
    image = segment(client, image_bytes, {"objects": [{"id": True, "points": [[20, 20]]}]})
    assert image.status_code == 422 and image.json()["error"]["field"] == "prompts[0].id"
    sid = new_session(client, video_bytes)
    cases = [
        ({"frame": 0, "object_id": True, "points": [[20, 20]]}, "body.object_id"),
        ({"frame": "0", "object_id": 1, "points": [[20, 20]]}, "body.frame"),
        ({"frame": 0, "object_id": 1, "points": [[True, 20]]}, "body.points[0][0]"),
        ({"frame": 0, "object_id": 1, "points": [[20, 20]], "labels": [True]}, "body.labels[0]"),
    ]
    for body, field in cases:
        response = client.post(f"/v1/sessions/{sid}/prompts", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field, (body, response.text)
    ok = client.post(f"/v1/sessions/{sid}/prompts", json=cases[0][0] | {"object_id": 1})
    assert ok.status_code == 200  # ints stay valid numbers for float fields too


def test_upload_limit_message_names_the_setting_value(make_client: AppFactory) -> None:
    client = make_client(max_upload_mb=5)
    body = b"\0" * (7 * 1024 * 1024)  # over the limit plus the form slack
    response = client.post("/v1/sessions", files={"video": ("v.mp4", body)})
    assert response.status_code == 413
    message = response.json()["error"]["message"]
    assert "limit of 5 MB" in message and "--max-upload-mb" in message


def test_healthz_names_the_model_served(make_client: AppFactory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    named = make_client(model="sam2.1_hiera_tiny")
    assert named.get("/healthz").json()["model"] == "sam2.1_hiera_tiny"
    with TestClient(create_app(ServerSettings(data_dir=tmp_path / "auto"))) as auto:
        health = auto.get("/healthz").json()
    assert health["model"] == resolve_model_name("auto") and health["model"] != "auto"
    assert health["model_loaded"] is False  # naming it loads nothing


def test_docs_are_served_by_the_app(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in page.text.split("<body")[1]
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert asset in page.text
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 10_000
    schema = client.get("/docs/openapi.json").json()
    assert schema["openapi"].startswith("3.0") and "/predictions" in schema["paths"]


def test_video_frame_pixels_are_limited_on_every_route(
    make_client: AppFactory, video_bytes: bytes
) -> None:
    client = make_client(max_image_pixels=WIDTH * HEIGHT - 1)  # one pixel short of the video
    session = client.post("/v1/sessions", files={"video": ("v.mp4", video_bytes)})
    assert session.status_code == 413, session.text
    assert "--max-image-pixels" in session.json()["error"]["message"]
    assert list((client.app.state.context.data_dir / "sessions").iterdir()) == []  # type: ignore[attr-defined]
    body = {"input": {"input_video": data_uri(video_bytes), "click_coordinates": "[20,20]"}}
    prediction = client.post("/predictions", json=body)
    assert prediction.status_code == 413, prediction.text
    assert "--max-image-pixels" in prediction.json()["error"]["message"]
    fits = make_client(max_image_pixels=WIDTH * HEIGHT)
    assert fits.post("/v1/sessions", files={"video": ("v.mp4", video_bytes)}).status_code == 201
