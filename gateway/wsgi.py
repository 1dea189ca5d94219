"""WSGI entry point for gunicorn: ``gateway.wsgi:app``."""

from gateway import create_app
from gateway.integrity.background import start_sealer

app = create_app()
start_sealer(app)  # in the server only: apps built by tests and the CLI seal on demand
