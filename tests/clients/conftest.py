"""The relays the client tests drive, with users (the clients log in as OPERATOR): one with the
seeded corpus per module (for the calls that only read), a fresh one per test (for those that
change the log)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api_relay import ApiRelay, api_relay


@pytest.fixture(scope="module")
def seeded() -> Iterator[ApiRelay]:
    with api_relay(users=True) as relay:
        yield relay


@pytest.fixture
def fresh() -> Iterator[ApiRelay]:
    with api_relay(users=True) as relay:
        yield relay


LIST = "lands with the list, search, delete and tags routes"
PENDING = dict.fromkeys(
    [
        "test_a_page_of_messages_as_the_models_read_it",
        "test_the_searches_its_query_builder_writes",
        "test_a_bcc_recipient_in_no_header_is_found_as_a_recipient",
        "test_a_message_its_headers_raw_source_and_parts",
        "test_fetching_a_message_marks_it_read",
        "test_mark_read_and_unread",
        "test_delete_by_ids_by_search_and_all",
        "test_a_form_body_on_delete_is_no_json_so_everything_is_deleted",
        "test_a_form_body_on_put_is_refused_as_mailpit_refuses_it",
        "test_playwright_helpers_calls",
    ],
    LIST,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = getattr(item, "originalname", item.name)
        if name in PENDING:
            item.add_marker(pytest.mark.xfail(strict=True, reason=PENDING[name]))
