"""The message transforms' settings: whose copies lose their calendar parts (or keep them as
an attachment), and what becomes of header recipients outside the envelope.

Read by `mime/`; the recipient scope is parsed by `model.IcsScope`, here only checked.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator

from mxrelay.config.values import (
    LowerList,
    SettingsGroup,
    setting,
)
from mxrelay.model import IcsScope


def _ics_scope(value: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse a list that means nothing (`@@@`, `off,@example.com`) when it is loaded, not when
    the first message arrives."""
    IcsScope.from_setting(value)
    return value


class MimeSettings(SettingsGroup):
    ics_strip: Annotated[LowerList, AfterValidator(_ics_scope)] = setting(
        "off",
        env="MXRELAY_ICS_STRIP",
        form="off, all, or comma-separated addresses and @domains",
        help="Recipients whose copy has its iCalendar parts stripped (or re-attached).",
    )
    ics_action: Literal["strip", "attach"] = setting(
        "strip",
        env="MXRELAY_ICS_ACTION",
        form="strip or attach",
        help="Remove the calendar parts, or keep them as a plain application/ics attachment.",
    )
    header_recipients: Literal["strip", "reject"] = setting(
        "strip",
        env="MXRELAY_HEADER_RECIPIENTS",
        form="strip or reject",
        help="Graph: header recipients not in the accepted envelope are removed, or refused.",
    )
