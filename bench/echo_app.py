"""The baseline of the REST benchmark: a plain Flask JSON echo.

``POST /echo`` parses the JSON body and returns it with ``jsonify``: the least a Flask
JSON endpoint under gunicorn can do, so the gateway's figures are read against it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request

app = Flask("echo")


@app.post("/echo")
def echo() -> Response:
    """Return the parsed JSON body as it came."""
    payload: Any = request.get_json()
    return jsonify(payload)
