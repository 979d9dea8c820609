"""HTTP API and web page of `masklet serve` (needs the `server` extra: FastAPI, uvicorn)."""

from masklet.server.app import create_app
from masklet.server.settings import ServerSettings, settings_from_env

__all__ = ["ServerSettings", "create_app", "settings_from_env"]
