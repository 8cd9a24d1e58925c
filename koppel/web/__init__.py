"""The web app: FastAPI and server-rendered Jinja pages over the store (docs/web.md)."""

from koppel.web.app import create_app

__all__ = ["create_app"]
