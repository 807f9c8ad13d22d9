"""``relance console``: the HTTP API (``/api/v1``) over the same MongoDB, behind API keys (docs/console.md)."""

from services.console.app import create_app
from services.console.guard import Console

__all__ = ["Console", "create_app"]
