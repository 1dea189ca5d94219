"""A stand-in CRM REST API on loopback, for write-back tests (Salesforce-shaped).

- ``POST /services/oauth2/token``: the client credentials grant (HTTP Basic or form
  credentials); hands out ``tok-<n>`` tokens living ``token_seconds``.
- ``PATCH /services/data/v61.0/sobjects/<object>/<id>``: needs a live bearer token
  (else 401 ``INVALID_SESSION_ID``); answers 204 and counts the PATCHes per record, or
  the status set for that record in ``statuses``.

It speaks HTTP/1.0 (one request per connection), so :meth:`StandInCrm.stop` really
takes the service down: the port is closed and no kept-alive connection survives.
:meth:`start` brings it back on the same port.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

CLIENT_ID = "loangate-writeback"
CLIENT_SECRET = "crm-s3cret-Pa55"
PATCH_PREFIX = "/services/data/v61.0/sobjects/"


@dataclass
class StandInCrm:
    """The stand-in's state: tokens, counters and switches; :meth:`start` / :meth:`stop`."""

    port: int = 0
    token_seconds: int = 3600
    #: record id -> HTTP status to answer its PATCHes with (instead of 204)
    statuses: dict[str, int] = field(default_factory=dict)
    patches: Counter[str] = field(default_factory=Counter)
    bodies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    correlation_ids: list[str] = field(default_factory=list)
    tokens_issued: int = 0
    unauthorised: int = 0
    live_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/services/oauth2/token"

    def start(self) -> None:
        """Listen on ``port`` (a free one the first time if 0)."""
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and close the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def revoke_tokens(self) -> None:
        """Invalidate every token handed out so far (a session reset on the CRM side)."""
        with self.lock:
            self.live_tokens.clear()


def _handler(crm: StandInCrm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_POST(self) -> None:
            if self.path != "/services/oauth2/token":
                return self._answer(404, [{"errorCode": "NOT_FOUND"}])
            form = {k: v[0] for k, v in parse_qs(self._body().decode()).items()}
            client_id, secret = form.get("client_id"), form.get("client_secret")
            basic = self.headers.get("Authorization", "")
            if basic.startswith("Basic "):
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            if form.get("grant_type") != "client_credentials":
                return self._answer(400, {"error": "unsupported_grant_type"})
            if (client_id, secret) != (CLIENT_ID, CLIENT_SECRET):
                return self._answer(400, {"error": "invalid_client"})
            with crm.lock:
                crm.tokens_issued += 1
                token = f"tok-{crm.tokens_issued}"
                crm.live_tokens[token] = time.monotonic() + crm.token_seconds
            self._answer(
                200,
                {"access_token": token, "token_type": "Bearer", "expires_in": crm.token_seconds},
            )

        def do_PATCH(self) -> None:
            if not self.path.startswith(PATCH_PREFIX):
                return self._answer(404, [{"errorCode": "NOT_FOUND"}])
            parts = self.path[len(PATCH_PREFIX) :].split("/")
            if len(parts) != 2:
                return self._answer(404, [{"errorCode": "NOT_FOUND"}])
            record_id = parts[1]
            auth = self.headers.get("Authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else ""
            body = self._body()
            with crm.lock:
                expiry = crm.live_tokens.get(token)
                if expiry is None or expiry < time.monotonic():
                    crm.unauthorised += 1
                    return self._answer(401, [{"errorCode": "INVALID_SESSION_ID"}])
                status = crm.statuses.get(record_id)
                if status is not None:
                    return self._answer(status, [{"errorCode": "STANDIN_STATUS"}])
                crm.patches[record_id] += 1
                crm.bodies.setdefault(record_id, []).append(json.loads(body))
                crm.correlation_ids.append(self.headers.get("X-Correlation-ID", ""))
            self._answer(204)

    return Handler


def main() -> None:
    """``python -m tests.crm_standin [PORT]``: serve the stand-in until Ctrl-C, printing PATCHes."""
    import sys

    crm = StandInCrm(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8082)
    crm.start()
    print(f"CRM stand-in at {crm.base_url} (client {CLIENT_ID} / {CLIENT_SECRET})", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.5)
            with crm.lock:
                total = sum(crm.patches.values())
                if total != seen:
                    print(f"PATCHes per record: {dict(crm.patches)}", flush=True)
                    seen = total
    except KeyboardInterrupt:
        crm.stop()


if __name__ == "__main__":
    main()
