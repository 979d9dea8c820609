"""The Hub reachability probe and the quiet context around the Hub client."""

from __future__ import annotations

import logging
import socket

import pytest

from masklet import hub
from masklet.hub import hub_unreachable, quiet_hub

PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*PROXY_VARIABLES, "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


class _Connection:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_no_name_resolution_is_reported_with_host_and_cause(no_proxy: pytest.MonkeyPatch) -> None:
    tried: list[tuple[str, int]] = []

    def fail(address: tuple[str, int], timeout: float) -> _Connection:
        tried.append(address)
        raise socket.gaierror(-2, "Name or service not known")

    no_proxy.setattr(hub.socket, "create_connection", fail)
    reason = hub_unreachable()
    assert tried == [("huggingface.co", 443)]
    assert reason == "cannot reach huggingface.co:443 ([Errno -2] Name or service not known)"


def test_a_mirror_endpoint_is_probed_instead(no_proxy: pytest.MonkeyPatch) -> None:
    tried: list[tuple[str, int]] = []

    def refuse(address: tuple[str, int], timeout: float) -> _Connection:
        tried.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    no_proxy.setenv("HF_ENDPOINT", "http://hub-mirror.example:8080")
    no_proxy.setattr(hub.socket, "create_connection", refuse)
    reason = hub_unreachable()
    assert tried == [("hub-mirror.example", 8080)]
    assert reason is not None and "hub-mirror.example:8080" in reason and "refused" in reason


def test_a_reachable_hub_is_none_and_the_probe_connection_is_closed(
    no_proxy: pytest.MonkeyPatch,
) -> None:
    connection = _Connection()
    no_proxy.setattr(hub.socket, "create_connection", lambda address, timeout: connection)
    assert hub_unreachable() is None
    assert connection.closed


def test_behind_a_proxy_nothing_is_probed(no_proxy: pytest.MonkeyPatch) -> None:
    def must_not_connect(address: tuple[str, int], timeout: float) -> _Connection:
        raise AssertionError("probed although a proxy is configured")

    no_proxy.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    no_proxy.setattr(hub.socket, "create_connection", must_not_connect)
    assert hub_unreachable() is None


def test_quiet_hub_hides_client_warnings_and_restores_the_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = logging.getLogger("huggingface_hub.utils._http")  # where the retry notices come from
    root = logging.getLogger("huggingface_hub")
    before = root.level
    caplog.set_level(logging.WARNING)
    with quiet_hub():
        client.warning("Retrying in 1s [Retry 1/5].")
        client.error("a real error")
    client.warning("after")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["a real error", "after"]
    assert root.level == before
    with pytest.raises(RuntimeError), quiet_hub():
        raise RuntimeError("boom")
    assert root.level == before
