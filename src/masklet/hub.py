"""Reaching the Hugging Face Hub without minutes of silent retries when there is no network.

The Hub client retries every request that fails to connect, five times with back-off (about
25 s per file, with a warning line per try), before it gives up or falls back to its cache.
Offline, loading a model of several files that way takes minutes and buries the one line
that says what to do. So before the Hub is used, one TCP connection tells whether it can be
reached at all:

    reason = hub_unreachable()      # None, or e.g. "cannot reach huggingface.co:443 (...)"
    with quiet_hub():               # the client's retry warnings are not shown
        hf_hub_download(...)

Behind a proxy the probe cannot say anything (the proxy resolves the name), so it reports the
Hub as reachable and the client decides.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["hub_endpoint", "hub_unreachable", "quiet_hub"]

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_SECONDS = 5.0


def hub_endpoint() -> str:
    """The Hub's base URL: $HF_ENDPOINT (a mirror) or huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "").strip() or DEFAULT_ENDPOINT


def _behind_proxy() -> bool:
    import urllib.request  # slow to import (http, ssl, email): only when the Hub is used

    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("https", "http", "all"))


def hub_unreachable(timeout: float = PROBE_TIMEOUT_SECONDS) -> str | None:
    """Why the Hub cannot be reached right now, or None when it can (or a proxy hides it).

    One TCP connection to the endpoint's host; it is closed at once.
    """
    if _behind_proxy():
        return None
    url = urllib.parse.urlsplit(hub_endpoint())
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:  # name resolution, refused, unreachable network, timeout
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return f"cannot reach {host}:{port} ({detail})"
    return None


@contextmanager
def quiet_hub() -> Iterator[None]:
    """Hide the Hub client's warnings (retry notices) for the duration; errors still raise."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
