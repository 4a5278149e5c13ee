"""Helpers shared by subcommands: loading settings with the documented exit status."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from mxrelay.config import ConfigError, Settings, load_settings

EXIT_CONFIG = 2


def load_or_exit(environ: Mapping[str, str]) -> Settings:
    """Settings from the environment; on a bad value print one line and exit with status 2."""
    try:
        return load_settings(environ)
    except ConfigError as exc:
        sys.stderr.write(f"mxrelay: configuration error: {exc}\n")
        raise SystemExit(EXIT_CONFIG) from None
