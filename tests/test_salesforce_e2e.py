"""Salesforce outbound messages end to end: a real zeep client built from the sample WSDL (SOAP
1.1 document/literal, as Salesforce sends) against real gunicorn, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import zeep
from lxml import etree
from zeep.exceptions import Fault

from gateway import db
from tests.conftest import drop_schema, make_db_url
from tests.servers import Server, running_server
from tests.test_salesforce import ORG, SAMPLE, URL, WSDL, acked, sfid

pytestmark = pytest.mark.e2e

BINDING = "{http://soap.sforce.com/2005/09/outbound}NotificationBinding"
RECORD_TYPE = "{urn:sobject.enterprise.soap.sforce.com}Loan_Application__c"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, trained_model: Any
) -> Iterator[Server]:
    if request.param == "postgresql" and not request.getfixturevalue("pg_available"):
        pytest.skip("PostgreSQL not reachable (a failure in CI)")
    url, schema = make_db_url(request.param, tmp_path_factory)
    tmp = tmp_path_factory.mktemp("salesforce-e2e")
    with running_server(url, tmp, trained_model) as srv:
        yield srv
    drop_schema(schema)


def count(server: Server, org: str = ORG) -> int:
    engine = db.make_engine(server.db_url)
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("select count(*) from decisions where client_id = :c"),
            {"c": f"salesforce:{org}"},
        ).scalar_one()
    engine.dispose()
    return int(found)


def sender(server: Server) -> Any:
    """What Salesforce is to the endpoint: a SOAP 1.1 client of the outbound-message WSDL."""
    transport = zeep.Transport(timeout=10, operation_timeout=10)
    client = zeep.Client(str(WSDL), transport=transport)
    return client, client.create_service(BINDING, f"{server.base}{URL}")


def notifications(client: zeep.Client, org: str, numbers: range) -> dict[str, Any]:
    record = client.get_type(RECORD_TYPE)
    return {
        "OrganizationId": org,
        "ActionId": sfid("04k", 1),
        "SessionId": None,
        "EnterpriseUrl": "https://example.my.salesforce.com/services/Soap/c/62.0",
        "PartnerUrl": "https://example.my.salesforce.com/services/Soap/u/62.0",
        "Notification": [
            {
                "Id": sfid("04l", 9000 + n),
                "sObject": record(
                    Id=sfid("a01", 9000 + n),
                    Birthdate__c=date(1980 + n, 3, 14),
                    Credit_Amount__c=1500.0 + 250 * n,
                    Housing__c="Rent",
                    LastModifiedDate=datetime(2026, 11, 30, 9, 15, tzinfo=UTC),
                    Purpose__c="Repairs",
                    Term_Months__c=12.0 + n,
                ),
            }
            for n in numbers
        ],
    }


def test_zeep_sender_gets_an_ack_and_retries_add_nothing(server: Server) -> None:
    client, service = sender(server)
    before = count(server)
    message = notifications(client, ORG, range(5))
    assert service.notifications(**message) is True
    assert count(server) == before + 5
    assert service.notifications(**message) is True  # a redelivery
    overlap = notifications(client, ORG, range(3, 8))  # 3 and 4 again, 5..7 new
    assert service.notifications(**overlap) is True
    assert count(server) == before + 8


def test_zeep_sender_sees_a_client_fault_for_an_unknown_org(server: Server) -> None:
    client, service = sender(server)
    stranger = sfid("00D", 42)
    with pytest.raises(Fault) as fault:
        service.notifications(**notifications(client, stranger, range(2)))
    assert fault.value.code.endswith(":Client") and stranger in fault.value.message
    assert count(server, stranger) == 0


def test_concurrent_deliveries_of_one_message_decide_once(server: Server) -> None:
    client, _ = sender(server)
    body = etree.tostring(
        client.create_message(
            client.create_service(BINDING, f"{server.base}{URL}"),
            "notifications",
            **notifications(client, ORG, range(100, 103)),
        )
    )
    before = count(server)

    def deliver(_: int) -> bool:
        resp = requests.post(
            f"{server.base}{URL}", data=body, headers={"Content-Type": "text/xml"}, timeout=30
        )
        return acked(resp)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(deliver, range(6)))
    assert all(answers)
    assert count(server) == before + 3


def test_the_sample_posted_raw(server: Server) -> None:
    resp = requests.post(
        f"{server.base}{URL}",
        data=SAMPLE,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
        timeout=10,
    )
    assert acked(resp), resp.text
