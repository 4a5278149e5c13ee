"""The settings table as declared: every group, and every option's type, default, bounds, parsers,
variable, form and help (tests/data/settings_table.txt).

The README's tables show most of it (tests/test_readme.py); this pins the rest, the types and the
parsers behind each variable, so moving declarations between modules cannot change one. To refresh
after changing a setting on purpose: `.venv/bin/python -m tests.config.test_table --write`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from pydantic import BaseModel

from mxrelay.config import Settings

SNAPSHOT = Path(__file__).resolve().parent.parent / "data" / "settings_table.txt"


def declarations() -> str:
    lines = [f"Settings {Settings.model_config}"]
    for group, group_field in Settings.model_fields.items():
        model = group_field.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        lines.append(f"{group}: {model.__name__} {model.model_config}")
        lines.extend(f"  {name}: {info!r}" for name, info in model.model_fields.items())
    return re.sub(r" at 0x[0-9a-f]+", "", "\n".join(lines)) + "\n"


def test_the_declarations_are_the_snapshot() -> None:
    assert declarations() == SNAPSHOT.read_text(encoding="utf-8"), (
        "the settings changed: if on purpose, run `.venv/bin/python -m tests.config.test_table "
        "--write`"
    )


if __name__ == "__main__" and "--write" in sys.argv:
    SNAPSHOT.write_text(declarations(), encoding="utf-8")
