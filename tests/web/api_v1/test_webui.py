"""/api/v1/webui: Mailpit's WebUIConfiguration, key for key, saying what the relay does not do."""

from __future__ import annotations

from mxrelay.web.api_v1.webui import web_ui_configuration
from tests.web.api_v1.conftest import Mailbox


async def test_web_ui_configuration(mailbox: Mailbox) -> None:
    config = (await mailbox.get("/api/v1/webui")).json()
    assert set(config) == {
        "Label", "MessageRelay", "SpamAssassin", "ChaosEnabled", "DuplicatesIgnored",
        "HideDeleteAllButton",
    }  # fmt: skip
    assert set(config["MessageRelay"]) == {
        "Enabled", "SMTPServer", "ReturnPath", "AllowedRecipients", "BlockedRecipients",
        "OverrideFrom", "PreserveMessageIDs", "RecipientAllowlist",
    }  # fmt: skip
    # Releasing works where there is a log; Mailpit's relay settings have no counterpart.
    relay = config["MessageRelay"]
    assert relay["Enabled"] is True
    assert not any(value for key, value in relay.items() if key != "Enabled")
    # None of the other Mailpit features is the relay's: each says so (false, or empty).
    assert not any(value for key, value in config.items() if key != "MessageRelay")


def test_without_a_log_there_is_nothing_to_release() -> None:
    assert web_ui_configuration(releases=False)["MessageRelay"]["Enabled"] is False
