"""ASGI entry point for `uvicorn api.main:app` (settings from the environment)."""

from api.app import create_app
from core.settings import admin_key_problem, get_settings

settings = get_settings()
# Uvicorn prints a traceback for anything the app raises while starting; a malformed
# bootstrap key is a configuration mistake, answered (as by `expunge up`) with one line.
if problem := admin_key_problem(settings.bootstrap_admin_key):
    raise SystemExit(problem)
app = create_app(settings)
