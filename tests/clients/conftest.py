"""The relays the client tests drive: one with the seeded corpus per module (for the calls that
only read), a fresh one per test (for those that change the log)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.api_relay import ApiRelay, api_relay


@pytest.fixture(scope="module")
def seeded() -> Iterator[ApiRelay]:
    with api_relay() as relay:
        yield relay


@pytest.fixture
def fresh() -> Iterator[ApiRelay]:
    with api_relay() as relay:
        yield relay


LIST = "lands with the list, search, delete and tags routes"
ONE = "lands with the one-message, info and view routes"
SEND = "lands with the send and release routes"
# Tests whose routes are still being written fail as expected, until they land.
PENDING = {
    "test_info": ONE,
    "test_a_page_of_messages_as_the_models_read_it": LIST,
    "test_the_searches_its_query_builder_writes": LIST,
    "test_a_bcc_recipient_in_no_header_is_found_as_a_recipient": LIST,
    "test_a_message_its_headers_raw_source_and_parts": ONE,
    "test_fetching_a_message_marks_it_read": ONE,
    "test_mark_read_and_unread": LIST,
    "test_delete_by_ids_by_search_and_all": LIST,
    "test_attachments_and_inline_parts_are_numbered_as_mailpit_numbers_them": ONE,
    "test_headers_are_lists_under_go_canonical_names": ONE,
    "test_a_form_body_on_delete_is_no_json_so_everything_is_deleted": LIST,
    "test_a_form_body_on_put_is_refused_as_mailpit_refuses_it": LIST,
    "test_playwright_helpers_calls": SEND,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = getattr(item, "originalname", item.name)
        if name in PENDING:
            item.add_marker(pytest.mark.xfail(strict=True, reason=PENDING[name]))
