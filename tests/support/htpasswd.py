"""Users files written by Apache's `htpasswd -B` (apache2-utils), as an operator writes them, for
SMTP AUTH (MXRELAY_SMTP_AUTH_USERS_FILE) and the web UI and API (MXRELAY_UI_AUTH_FILE,
MXRELAY_SEND_API_AUTH_FILE)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HTPASSWD = shutil.which("htpasswd")


def htpasswd_line(user: str, password: str, cost: int) -> str:
    """`user:$2y$...`, as `htpasswd -nbB -C cost` prints it."""
    assert HTPASSWD, "htpasswd is missing: install apache2-utils (make test does)"
    result = subprocess.run(
        [HTPASSWD, "-nbB", "-C", str(cost), user, password],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def htpasswd_file(path: Path, cost: int, **users: str) -> Path:
    """A users file at `path` with one line per user (passwords given as keyword values)."""
    lines = [htpasswd_line(user, password, cost) for user, password in users.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
