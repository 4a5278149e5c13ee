"""schemathesis against `/api/v1/swagger.json` and a running relay: for every operation the
document describes, generated requests (valid ones and invalid ones) never get a 5xx, and every
answer matches the document (status code, content type, headers, body schema).

Reads run against a relay with the seeded corpus; the operations that change state against a
throw-away one; both with users, the requests an operator's. Path parameters are often the seeded IDs, part numbers and tags, so the answers
cover found messages as well as 404s. Deterministic (derandomized Hypothesis); the example count
is `MXRELAY_API_FUZZ_EXAMPLES` per operation (a few here, many under `make fuzz`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mxrelay.web.api_v1.openapi import document
from tests.support.api_relay import OPERATOR, ApiRelay, api_relay

EXAMPLES = int(os.environ.get("MXRELAY_API_FUZZ_EXAMPLES", "12"))
TIMEOUT = max(120, EXAMPLES // 2)
"""Seconds one operation's examples may take: half a second a request, which a loaded machine
reaches (the suite's 120 s stopped `make fuzz`'s 2,000 requests of a search part way)."""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT)]
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
PART_IDS = ("1", "2", "3", "4", "1.1", "1.2", "2.1")
TAGS = ("billing", "Quarter 1", "nothing")

WEBSOCKETS = {("/api/events", "get")}
"""Not HTTP requests to fuzz: the clients' tests drive the websocket."""
OPERATIONS = sorted(
    (path, method)
    for path, item in document()["paths"].items()
    for method in item
    if (path, method) not in WEBSOCKETS
)
READS = [(path, method) for path, method in OPERATIONS if method == "get"]
WRITES = [(path, method) for path, method in OPERATIONS if method != "get"]


@pytest.fixture(scope="module")
def seeded() -> Iterator[ApiRelay]:
    with api_relay(users=True) as relay:
        yield relay


@pytest.fixture(scope="module")
def throwaway() -> Iterator[ApiRelay]:
    with api_relay(users=True) as relay:
        yield relay


def exercise(relay: ApiRelay, path: str, method: str) -> None:
    schema = schemathesis.openapi.from_url(f"{relay.base_url}/api/v1/swagger.json", auth=OPERATOR)
    operation = schema[path][method]
    listing = httpx.get(f"{relay.base_url}/api/v1/messages", auth=OPERATOR, timeout=10).json()
    choices = {
        "ID": [*(m["ID"] for m in listing["messages"]), "latest"],
        "PartID": list(PART_IDS),
        "Tag": list(TAGS),
    }
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @FUZZ
    @given(case=cases, data=st.data())
    def run(case: schemathesis.Case[Any], data: st.DataObject) -> None:
        for name, values in choices.items():
            if case.path_parameters and name in case.path_parameters and data.draw(st.booleans()):
                case.path_parameters[name] = data.draw(st.sampled_from(values))
        case.call_and_validate(base_url=relay.base_url, checks=CHECKS, auth=OPERATOR, timeout=30)

    run()


@pytest.mark.parametrize(("path", "method"), READS, ids=[f"GET {p}" for p, _ in READS])
def test_fuzz_reads_match_the_document(seeded: ApiRelay, path: str, method: str) -> None:
    exercise(seeded, path, method)


@pytest.mark.parametrize(("path", "method"), WRITES, ids=[f"{m.upper()} {p}" for p, m in WRITES])
def test_fuzz_state_changes_match_the_document(throwaway: ApiRelay, path: str, method: str) -> None:
    exercise(throwaway, path, method)
