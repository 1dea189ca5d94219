"""A stand-in core-banking SOAP service on loopback, for outbound-connection tests.

It serves ``config/wsdl/core-banking.wsdl`` at ``GET /core-banking?wsdl`` and answers
``GetCustomerProfile`` per that WSDL. Its ``mode`` switches behaviour while it runs:
``healthy``, ``slow`` (answers after ``slow_seconds``), ``fault`` (a SOAP Server fault),
``http500`` (a bare HTTP 500), ``dtd`` (a reply with an entity bomb), ``huge`` (a reply
over 2 MB). It counts calls and WSDL loads and keeps what each call carried.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from werkzeug.serving import make_server

WSDL = Path(__file__).resolve().parent.parent / "config" / "wsdl" / "core-banking.wsdl"
NS = {
    "soap": "http://schemas.xmlsoap.org/soap/envelope/",
    "c": "urn:corebank:customers:v1",
    "lg": "urn:loangate:correlation",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

PROFILE = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<c:GetCustomerProfileResponse xmlns:c="urn:corebank:customers:v1"><c:profile>
<c:customerId>{customer_id}</c:customerId><c:customerSince>2011-04-01</c:customerSince>
<c:relationshipYears>15</c:relationshipYears><c:segment>retail</c:segment>
<c:monthlyIncome>3250.50</c:monthlyIncome><c:daysInArrears>{arrears}</c:daysInArrears>
<c:hasOverdraft>false</c:hasOverdraft>
</c:profile></c:GetCustomerProfileResponse></soap:Body></soap:Envelope>"""

FAULT = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{text}</faultstring></soap:Fault>
</soap:Body></soap:Envelope>"""

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<c:GetCustomerProfileResponse xmlns:c="urn:corebank:customers:v1"><c:profile>
<c:customerId>&lol3;</c:customerId></c:profile></c:GetCustomerProfileResponse>
</soap:Body></soap:Envelope>"""


@dataclass
class Seen:
    """What one call carried."""

    customer_id: str | None
    http_correlation: str | None
    soap_correlation: str | None
    authorization: str | None
    wsse_user: str | None
    wsse_ok: bool | None


@dataclass
class CoreBankingStandIn:
    """The WSGI app of the stand-in service."""

    mode: str = "healthy"
    slow_seconds: float = 2.0
    basic: tuple[str, str] | None = None  # required Basic credentials
    wsse: tuple[str, str] | None = None  # required UsernameToken credentials
    calls: int = 0
    wsdl_loads: int = 0
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, mode: str = "healthy") -> None:
        with self.lock:
            self.mode, self.calls, self.wsdl_loads = mode, 0, 0
            self.basic = self.wsse = None
            self.seen.clear()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if method == "GET" and environ.get("QUERY_STRING", "").lower() == "wsdl":
            with self.lock:
                self.wsdl_loads += 1
            return self._reply(start_response, "200 OK", WSDL.read_bytes())
        if method != "POST":
            return self._reply(start_response, "405 Method Not Allowed", b"", "text/plain")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        seen = self._record(environ, body)
        if self.basic is not None:
            expected = "Basic " + base64.b64encode(":".join(self.basic).encode()).decode()
            if seen.authorization != expected:
                return self._reply(start_response, "401 Unauthorized", b"", "text/plain")
        if self.wsse is not None and not seen.wsse_ok:
            fault = FAULT.format(code="Client", text="authentication failed").encode()
            return self._reply(start_response, "500 Internal Server Error", fault)
        mode = self.mode
        if mode == "slow":
            self.release.wait(self.slow_seconds)
        if mode == "fault":
            fault = FAULT.format(code="Server", text="core banking unavailable").encode()
            return self._reply(start_response, "500 Internal Server Error", fault)
        if mode == "http500":
            return self._reply(start_response, "500 Internal Server Error", b"oops", "text/plain")
        if mode == "dtd":
            return self._reply(start_response, "200 OK", BOMB.encode())
        if mode == "huge":
            filler = b"<!--" + b"x" * (2 << 20) + b"-->"
            return self._reply(start_response, "200 OK", filler)
        if seen.customer_id == "UNKNOWN":
            fault = FAULT.format(code="Client", text="no such customer").encode()
            return self._reply(start_response, "500 Internal Server Error", fault)
        arrears = 30 if (seen.customer_id or "").endswith("9") else 0
        text = PROFILE.format(customer_id=seen.customer_id, arrears=arrears)
        return self._reply(start_response, "200 OK", text.encode())

    def _record(self, environ: dict[str, Any], body: bytes) -> Seen:
        doc = etree.fromstring(body, _PARSER)
        user = doc.findtext(".//wsse:UsernameToken/wsse:Username", namespaces=NS)
        seen = Seen(
            customer_id=doc.findtext(".//c:GetCustomerProfile/c:customerId", namespaces=NS),
            http_correlation=environ.get("HTTP_X_CORRELATION_ID"),
            soap_correlation=doc.findtext("soap:Header/lg:CorrelationID", namespaces=NS),
            authorization=environ.get("HTTP_AUTHORIZATION"),
            wsse_user=user,
            wsse_ok=self._wsse_ok(doc) if self.wsse else None,
        )
        with self.lock:
            self.calls += 1
            self.seen.append(seen)
        return seen

    def _wsse_ok(self, doc: Any) -> bool:
        assert self.wsse is not None
        token = doc.find(".//wsse:UsernameToken", namespaces=NS)
        if token is None or token.findtext("wsse:Username", namespaces=NS) != self.wsse[0]:
            return False
        password = token.find("wsse:Password", namespaces=NS)
        if password is None:
            return False
        if not (password.get("Type") or "").endswith("#PasswordDigest"):
            return password.text == self.wsse[1]
        nonce = base64.b64decode(token.findtext("wsse:Nonce", namespaces=NS) or "")
        created = (token.findtext("wsu:Created", namespaces=NS) or "").encode()
        digest = hashlib.sha1(nonce + created + self.wsse[1].encode()).digest()
        return base64.b64encode(digest).decode() == password.text

    @staticmethod
    def _reply(
        start_response: Any, status: str, body: bytes, content_type: str = "text/xml"
    ) -> list[bytes]:
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]


@contextmanager
def serve(app: CoreBankingStandIn) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yields the service URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/core-banking"
    finally:
        app.release.set()  # let slow answers finish
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A loopback URL where nothing listens (a port bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/core-banking"


def main() -> None:
    """``python -m tests.soap_standin [PORT] [MODE]``: serve the stand-in until Ctrl-C."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    app = CoreBankingStandIn(mode=sys.argv[2] if len(sys.argv) > 2 else "healthy")
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"core-banking stand-in ({app.mode}) at http://127.0.0.1:{port}/core-banking")
    with suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
