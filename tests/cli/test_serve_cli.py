"""`masklet serve` flags: every limit's help states the server's real default."""

from __future__ import annotations

import re

import pytest

from masklet.cli.serve import LIMIT_FLAGS
from masklet.errors import InvalidInputError
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


def test_json_limit_flags_and_variables_reach_the_settings() -> None:
    """`--max-json-depth` / `--max-json-bytes` (and their MASKLET_* variables) set the limits
    every request is checked with."""
    from masklet.cli.main import build_parser
    from masklet.cli.serve import settings_from_args
    from masklet.server.settings import settings_from_env

    argv = ["serve", "--max-json-depth", "7", "--max-json-bytes", "5000"]
    limits = settings_from_args(build_parser("serve").parse_args(argv)).limits
    assert (limits.max_json_depth, limits.max_json_bytes) == (7, 5000)
    env = {"MASKLET_MAX_JSON_DEPTH": "9", "MASKLET_MAX_JSON_BYTES": "123"}
    assert settings_from_env(env).limits.max_json_depth == 9
    assert settings_from_env(env).limits.max_json_bytes == 123
    with pytest.raises(InvalidInputError, match="max_json_depth must be > 0"):
        ServerSettings(max_json_depth=0).validate()
