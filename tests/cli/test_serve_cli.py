"""`masklet serve` flags: every limit's help states the server's real default."""

from __future__ import annotations

import os
import re

import pytest

from masklet.cli.main import build_parser
from masklet.cli.serve import LIMIT_FLAGS, SERVICE_FLAGS, setting_name, settings_from_args
from masklet.errors import InvalidInputError
from masklet.server.settings import ServerSettings


@pytest.mark.parametrize(("flag", "kind", "metavar", "text"), LIMIT_FLAGS)
def test_limit_help_names_the_settings_default(
    flag: str, kind: type, metavar: str, text: str
) -> None:
    default = getattr(ServerSettings(), setting_name(flag))
    stated = re.search(r"\(default ([0-9.]+)\)", text)
    assert stated is not None, text
    assert kind(stated.group(1)) == default, (flag, default)


def test_json_limit_flags_and_variables_reach_the_settings() -> None:
    """`--max-json-depth` / `--max-json-bytes` (and their MASKLET_* variables) set the limits
    every request is checked with."""
    from masklet.server.settings import settings_from_env

    argv = ["serve", "--max-json-depth", "7", "--max-json-bytes", "5000"]
    limits = settings_from_args(build_parser("serve").parse_args(argv)).limits
    assert (limits.max_json_depth, limits.max_json_bytes) == (7, 5000)
    env = {"MASKLET_MAX_JSON_DEPTH": "9", "MASKLET_MAX_JSON_BYTES": "123"}
    assert settings_from_env(env).limits.max_json_depth == 9
    assert settings_from_env(env).limits.max_json_bytes == 123
    with pytest.raises(InvalidInputError, match="max_json_depth must be > 0"):
        ServerSettings(max_json_depth=0).validate()


def test_every_table_flag_reaches_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each flag of the tables, given a value no default has, lands in its settings field."""
    for name in [n for n in os.environ if n.startswith("MASKLET_")]:
        monkeypatch.delenv(name)
    given = {str: "https://masks.example.org", int: "7", float: "7.5"}
    flags = SERVICE_FLAGS + LIMIT_FLAGS
    argv = ["serve"] + [part for flag, kind, *_ in flags for part in (flag, given[kind])]
    settings = settings_from_args(build_parser("serve").parse_args(argv))
    for flag, kind, *_ in flags:
        assert getattr(settings, setting_name(flag)) == kind(given[kind]), flag
    assert settings_from_args(build_parser("serve").parse_args(["serve"])) == ServerSettings()
