"""Issue 17: Schemathesis (property-based requests generated from our OpenAPI schema) against the
app, seeded and bounded: no 5xx, no status code the schema does not document, no response that
breaks its documented schema or content type."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from masklet.modeling.sam2 import SAM2Model
from masklet.server.app import create_app
from masklet.server.settings import ServerSettings
from tests.server.test_text_api import squares

schemathesis = pytest.importorskip("schemathesis", reason="pip install schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 40  # per operation and generation mode: the run stays around a minute
CHECKS = [
    not_a_server_error, status_code_conformance, response_schema_conformance,
    content_type_conformance,
]  # fmt: skip


@pytest.fixture(scope="module")
def fuzzed_app(tiny_model: SAM2Model, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data: Path = tmp_path_factory.mktemp("fuzz")
    # a scripted text detector: text prompts run (offline, a real one would answer 503)
    return create_app(ServerSettings(
        data_dir=data, model_factory=lambda _: tiny_model, detector_factory=lambda _: squares(),
    ))  # fmt: skip


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: FastAPI):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


def fuzz(operation, mode: GenerationMode, path_parameters, tried: dict[str, int]) -> str | None:  # type: ignore[no-untyped-def]
    """One seeded hypothesis run of an operation; the failure report, or None."""

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), phases=[Phase.generate],
    )  # fmt: skip
    def run(case) -> None:  # type: ignore[no-untyped-def]
        tried[case.operation.label] = tried.get(case.operation.label, 0) + 1
        case.call_and_validate(checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # no invalid input exists (e.g. GET /healthz takes none)
        return None
    except BaseException as error:  # a FailureGroup: reported, and every operation still runs
        if isinstance(error, KeyboardInterrupt):
            raise
        return str(error)[:1500]
    return None


def test_every_operation_keeps_its_schema(  # type: ignore[no-untyped-def]
    api_schema, fuzzed_app: FastAPI, video_bytes: bytes
) -> None:
    """Each operation, positive and negative cases; the session operations also on a real
    session with an uploaded video (a fresh one each, as the fuzzer may delete it).
    Schemathesis's pytest plugin does not run under this pytest, so hypothesis drives each
    operation's strategy directly."""
    failures: list[str] = []
    tried: dict[str, int] = {}
    client = TestClient(fuzzed_app)
    runs = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        sessions = [None, "real"] if "{session_id}" in operation.path else [None]
        for mode in GenerationMode:
            for pinned in sessions:
                path_parameters = None
                if pinned is not None:
                    files = {"video": ("v.mp4", video_bytes)}
                    created = client.post("/v1/sessions", files=files)
                    assert created.status_code == 201, created.text
                    path_parameters = {"session_id": created.json()["id"]}
                failure = fuzz(operation, mode, path_parameters, tried)
                runs += 1
                if failure is not None:
                    where = f"{operation.label} [{mode.value}{', real session' if pinned else ''}]"
                    failures.append(f"{where}: {failure}")
                if path_parameters is not None:
                    client.delete(f"/v1/sessions/{path_parameters['session_id']}")
    cases = sum(tried.values())
    print(
        f"\nschemathesis: {len(tried)} operations, {runs} runs, {cases} cases, "
        f"{len(failures)} failures (5xx, undocumented status, schema or content type)"
    )
    assert len(tried) >= 15, sorted(tried)  # every operation of the API was exercised
    assert not failures, "\n\n".join(failures)
