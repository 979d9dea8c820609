"""`masklet serve` flags: every limit's help states the server's real default."""

from __future__ import annotations

import re

import pytest

from masklet.cli.serve import LIMIT_FLAGS
from masklet.server.settings import ServerSettings

FIELD_OF = {"--session-ttl": "session_ttl_seconds", "--max-points": "max_points"}


@pytest.mark.parametrize(("flag", "kind", "metavar", "text"), LIMIT_FLAGS)
def test_limit_help_names_the_settings_default(
    flag: str, kind: type, metavar: str, text: str
) -> None:
    field = FIELD_OF.get(flag, flag.removeprefix("--").replace("-", "_"))
    default = getattr(ServerSettings(), field)
    stated = re.search(r"\(default ([0-9.]+)\)", text)
    assert stated is not None, text
    assert kind(stated.group(1)) == default, (flag, default)
