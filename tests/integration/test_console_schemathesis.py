"""Schemathesis over the console's OpenAPI document, against the console served over HTTP on the real
MongoDB-compatible server: with a key, no request gets a 5xx and every response matches its declared
status, media type and schema; without a key, every operation answers 401.

Small and deterministic (a fixed seed, a few examples per operation): a couple of minutes on 2 cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from services.console import Console, create_app
from shared.adapters.mongo import connect, mongo_repositories
from shared.clock import FakeClock
from shared.domain.models import Campaign, EnrolRule, Step
from shared.fakes import RecordingQueue
from shared.usecases.api_keys import create_key
from shared.usecases.campaigns import create_campaign, enrol_campaign
from shared.usecases.invoices import import_invoices
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.integration
EXAMPLES = 8
VALIDATED = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
             checks.response_schema_conformance]
ROWS = ("phone,name,language,tags,invoice,amount,currency,due_date\n"
        "+33612345601,Marie Dupont,fr,clients,FA-1,250.00,EUR,2026-02-15\n"
        "+33612345602,Paul Martin,fr,clients,FA-2,99.90,EUR,2026-03-01\n")


@pytest.fixture(scope="module")
def served(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The console over HTTP on its own database with two clients, their invoices, a campaign; (base URL, key)."""
    client = connect(mongo_uri)
    name = "relance_schemathesis"
    client.drop_database(name)
    store = mongo_repositories(client[name])
    store.ensure_indexes()
    clock = FakeClock()
    path: Path = tmp_path_factory.mktemp("schemathesis") / "invoices.csv"
    path.write_text(ROWS, encoding="utf-8")
    assert not import_invoices(store, path, now=clock.now()).errors
    create_campaign(store, Campaign(id="relance", name="Relance", steps=[Step()], enrol=EnrolRule(tags=["clients"])),
                    now=clock.now())
    enrol_campaign(store, "relance", now=clock.now())
    key = create_key(store, "schemathesis", now=clock.now())
    with serve_asgi(create_app(Console(store, clock, queue=RecordingQueue()))) as base:
        yield base, key
    client.drop_database(name)
    client.close()


# The document does not depend on the data: read from an app over no store, served ones answer the calls.
schema = schemathesis.openapi.from_dict(create_app(Console(None, FakeClock())).openapi())  # type: ignore[arg-type]


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_with_a_key_no_5xx_and_every_answer_matches_the_document(case: Any, served: tuple[str, str]) -> None:
    base, key = served
    case.call_and_validate(base_url=base, headers={"Authorization": f"Bearer {key}"}, checks=VALIDATED, timeout=20)


@schema.parametrize()
@settings(max_examples=3, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_without_a_key_every_operation_answers_401(case: Any, served: tuple[str, str]) -> None:
    base, _ = served
    if case.method.upper() != case.operation.method.upper():
        return  # schemathesis also tries methods the document does not declare (TRACE…): 405, not ours to check
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    response = case.call(base_url=base, timeout=20)
    assert response.status_code == 401, (case.method, case.path, response.status_code, response.text[:200])
    assert response.headers.get("content-type") == ["application/problem+json"]
