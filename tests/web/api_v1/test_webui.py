"""/api/v1/webui: Mailpit's WebUIConfiguration, key for key, saying what the relay does not do."""

from __future__ import annotations

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
    # None of these Mailpit features is the relay's: each says so (false, or empty).
    assert not any(config["MessageRelay"].values())
    assert not any(value for key, value in config.items() if key != "MessageRelay")
