"""Tests whose routes are still being written fail as expected, until they land."""

from __future__ import annotations

import pytest

LIST = "lands with the list, search, delete and tags routes"
ONE = "lands with the one-message, info and view routes"
SEND = "lands with the send and release routes"
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
