"""Reading the environment through the table into `Settings`, and showing the values it produced.

Also the rules that span several options (`_complete`, `graph_settings_problem`).
"""

from __future__ import annotations

import difflib
import enum
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from annotated_types import Ge, Le
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mxrelay.config.graph import GraphSettings
from mxrelay.config.settings import Settings
from mxrelay.config.smtp import SmtpSettings
from mxrelay.config.store import store_url
from mxrelay.config.values import ConfigError, format_duration, format_size, parse_host_name
from mxrelay.config.web import web_settings_problem
from mxrelay.log import MASK, redact
from mxrelay.model import DeliveryMode


@dataclass(frozen=True, slots=True)
class Option:
    """One row of the settings table."""

    group: str
    name: str
    env: str
    form: str
    help: str
    secret: bool
    aliases: tuple[str, ...]
    default: Any
    least: Any = None
    """The declared lower bound (`ge`), if any; `most` the upper one (`le`)."""
    most: Any = None


def options() -> Iterator[Option]:
    """Every option in declaration order (feeds `mxrelay config`, --help and the README)."""
    for group, group_field in Settings.model_fields.items():
        model = group_field.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        for name, info in model.model_fields.items():
            extra = _extra(info)
            yield Option(
                group=group,
                name=name,
                env=str(extra["env"]),
                form=str(extra["form"]),
                help=info.description or "",
                secret=bool(extra["secret"]),
                aliases=tuple(extra["aliases"]),
                default=info.default,
                least=next((m.ge for m in info.metadata if isinstance(m, Ge)), None),
                most=next((m.le for m in info.metadata if isinstance(m, Le)), None),
            )


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    assert isinstance(extra, dict)
    return extra


def _read_secret_file(env: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"{env}_FILE: {path!r} cannot be read ({exc.strerror}); expected a readable file"
        ) from None


def _raw_values(environ: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Collect the values present in the environment, keyed by group and field.

    Also returns which variable each value came from, so an error can name it.
    """
    raw: dict[str, dict[str, Any]] = {}
    source: dict[str, str] = {}
    for option in options():
        value: str | None = environ.get(option.env)
        origin = option.env
        if option.secret and environ.get(option.env + "_FILE"):
            if value is not None:
                raise ConfigError(
                    f"{option.env}: set both directly and through {option.env}_FILE; expected one"
                )
            value = _read_secret_file(option.env, environ[option.env + "_FILE"])
            origin = option.env + "_FILE"
        if value is None:
            value, origin = _legacy_value(option, environ)
        if value is None:
            continue
        raw.setdefault(option.group, {})[option.name] = value
        source[f"{option.group}.{option.name}"] = origin
    if "delivery" not in raw.get("service", {}) and "UPSTREAM_HOST" in environ:
        raw.setdefault("service", {})["delivery"] = DeliveryMode.PASSTHROUGH.value
        source["service.delivery"] = "UPSTREAM_HOST"
    return raw, source


def _legacy_value(option: Option, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The reference validator's names: LISTEN_ADDR, UPSTREAM_HOST and UPSTREAM_PORT."""
    if option.env == "MXRELAY_SMTP_LISTEN" and "LISTEN_ADDR" in environ:
        return environ["LISTEN_ADDR"], "LISTEN_ADDR"
    if option.env == "MXRELAY_UPSTREAM" and "UPSTREAM_HOST" in environ:
        host = environ["UPSTREAM_HOST"].strip()
        port = environ.get("UPSTREAM_PORT", "25").strip()
        if not port.isdigit():
            raise ConfigError(f"UPSTREAM_PORT: {port!r} is not a port; expected an integer 1-65535")
        host = f"[{host}]" if ":" in host else host
        return f"smtp://{host}:{port}", "UPSTREAM_HOST"
    return None, option.env


def _describe(error: Mapping[str, Any], source: Mapping[str, str], raw: Mapping[str, Any]) -> str:
    location = [str(part) for part in error.get("loc", ())]
    key = ".".join(location[:2])
    by_key = {f"{o.group}.{o.name}": o for o in options()}
    option = by_key.get(key)
    variable = source.get(key, option.env if option else key)
    value = raw.get(location[0], {}).get(location[1]) if len(location) >= 2 else None
    message = _bound_message(error, option) or str(error.get("msg", "is not valid"))
    message = message.removeprefix("Value error, ")
    if not message.startswith(("is ", "has ", "carries ")):
        message = f"is not valid ({message[0].lower()}{message[1:]})"
    if variable.endswith("_FILE") or (option and option.secret):
        shown = "the value"  # never echo a secret, not even a malformed one
        return f"{variable}: {shown} {message}; expected {option.form if option else 'a value'}"
    shown = f"{value!r}" if value is not None else "the value"
    return f"{variable}: {shown} {message}; expected {option.form if option else 'a valid value'}"


def _bound_message(error: Mapping[str, Any], option: Option | None) -> str | None:
    """ "is below the minimum, 1s" for a duration out of its bounds (pydantic says "1 second")."""
    kind = error.get("type")
    if option is None or kind not in ("greater_than_equal", "less_than_equal"):
        return None
    below = kind == "greater_than_equal"
    limit = option.least if below else option.most
    if not isinstance(limit, timedelta):
        return None
    return f"is {'below the minimum' if below else 'above the maximum'}, {format_duration(limit)}"


TEST_VARIABLES = (
    "MXRELAY_FUZZ_EXAMPLES",
    "MXRELAY_HYPOTHESIS_EXAMPLES",
    "MXRELAY_SOAK_SECONDS",
    "MXRELAY_SOAK_RATE",
    "MXRELAY_CONSOLE_BENCH_MESSAGES",
    "MXRELAY_CONSOLE_BENCH_REQUESTS",
    "MXRELAY_WRITE_SCREENSHOTS",
    "MXRELAY_BENCH_LOG_STORE",
    "MXRELAY_API_FUZZ_EXAMPLES",
)
"""MXRELAY_ names that are not settings: the test suite's and the benchmarks' own knobs (`make fuzz`,
the soak, the benchmarks and the API fuzz run set them), which a relay started from that
environment must tolerate."""


def known_variables() -> frozenset[str]:
    """Every MXRELAY_ variable a relay reads: the table's, and `*_FILE` for each secret."""
    names = {option.env for option in options()}
    names |= {option.env + "_FILE" for option in options() if option.secret}
    return frozenset(names)


def unknown_variable_problem(environ: Mapping[str, str]) -> str | None:
    """One line for the first MXRELAY_ variable that is not a setting, with the closest name.

    A misspelt name would otherwise leave its setting at the default without a word. The value is
    never shown: the variable may hold a secret under a misspelt name.
    """
    known = known_variables()
    unknown = sorted(
        name
        for name in environ
        if name.startswith("MXRELAY_") and name not in known and name not in TEST_VARIABLES
    )
    if not unknown:
        return None
    name = unknown[0] if unknown[0].isprintable() else repr(unknown[0])
    prefix = len("MXRELAY_")
    close = difflib.get_close_matches(name[prefix:], [k[prefix:] for k in known], n=1)
    hint = f"did you mean MXRELAY_{close[0]}?" if close else "see `mxrelay config --markdown`"
    return f"{name}: is not a setting of mxrelay ({hint}); expected a known MXRELAY_ variable"


def load_settings(
    environ: Mapping[str, str], *, hostname: Callable[[], str] = socket.getfqdn
) -> Settings:
    """Build the settings from `environ`; raise ConfigError (one line) on the first bad value
    or on an MXRELAY_ variable that is not a setting."""
    if problem := unknown_variable_problem(environ):
        raise ConfigError(problem)
    raw, source = _raw_values(environ)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0], source, raw)) from None
    return _complete(settings, hostname)


def graph_settings_problem(graph: GraphSettings) -> str | None:
    """Why Graph delivery cannot work with these settings (one line naming the variable)."""
    if not graph.tenant_id:
        return "MXRELAY_GRAPH_TENANT_ID: missing, but Graph delivery needs it; expected a tenant id"
    if not graph.client_id:
        return "MXRELAY_GRAPH_CLIENT_ID: missing, but Graph delivery needs it; expected a client id"
    if graph.client_secret is None and graph.certificate_file is None:
        return (
            "MXRELAY_GRAPH_CLIENT_SECRET: missing, and no MXRELAY_GRAPH_CERTIFICATE_FILE either; "
            "expected a client secret or a certificate"
        )
    if graph.client_secret is not None and graph.certificate_file is not None:
        return (
            "MXRELAY_GRAPH_CERTIFICATE_FILE: set together with MXRELAY_GRAPH_CLIENT_SECRET; "
            "expected one credential"
        )
    for env, url in (
        ("MXRELAY_GRAPH_AUTHORITY", graph.authority),
        ("MXRELAY_GRAPH_ENDPOINT", graph.endpoint),
    ):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            return f"{env}: {url!r} is not an https:// URL; expected an https:// URL"
    return None


def _host_name(name: str) -> str:
    """This host's name for the banner, or `localhost` when the system's is not a host name."""
    try:
        return parse_host_name(name) or "localhost"
    except ValueError:
        return "localhost"


def smtp_settings_problem(smtp: SmtpSettings) -> str | None:
    """A rule spanning SMTP settings that does not hold (one line naming the variable), or None."""
    if smtp.data_memory_limit < smtp.max_message_size:
        return (
            f"MXRELAY_SMTP_DATA_MEMORY_LIMIT: {format_size(smtp.data_memory_limit)!r} is smaller "
            f"than MXRELAY_MAX_MESSAGE_SIZE ({format_size(smtp.max_message_size)}), so the "
            "largest messages could never be accepted; expected at least that size"
        )
    return None


def _complete(settings: Settings, hostname: Callable[[], str]) -> Settings:
    """Defaults that depend on the host, and rules that span several options."""
    service = settings.service
    if not service.hostname:
        service = service.model_copy(update={"hostname": _host_name(hostname())})
    mode = service.delivery
    if mode in (DeliveryMode.PASSTHROUGH, DeliveryMode.SMTP) and settings.upstream.url is None:
        raise ConfigError(
            f"MXRELAY_UPSTREAM: missing, but MXRELAY_DELIVERY={mode.value} needs it; "
            "expected smtp://host:port"
        )
    if mode is DeliveryMode.GRAPH and (problem := graph_settings_problem(settings.graph)):
        raise ConfigError(problem)
    if settings.dns.cache_min_ttl > settings.dns.cache_max_ttl:
        raise ConfigError(
            "MXRELAY_DNS_CACHE_MIN_TTL: is longer than MXRELAY_DNS_CACHE_MAX_TTL; "
            "expected a duration no longer than the maximum"
        )
    try:
        store_url(settings.store.database_url)
    except ValueError as exc:
        form = next(o.form for o in options() if o.env == "MXRELAY_DATABASE_URL")
        shown = redact_url(settings.store.database_url)
        raise ConfigError(f"MXRELAY_DATABASE_URL: {shown!r} {exc}; expected {form}") from None
    if problem := smtp_settings_problem(settings.smtp):
        raise ConfigError(problem)
    if problem := web_settings_problem(settings.web):
        raise ConfigError(problem)
    if (settings.smtp.tls_cert_file is None) != (settings.smtp.tls_key_file is None):
        missing = (
            "MXRELAY_SMTP_TLS_KEY_FILE"
            if settings.smtp.tls_key_file is None
            else ("MXRELAY_SMTP_TLS_CERT_FILE")
        )
        raise ConfigError(f"{missing}: missing; expected a PEM file path beside its pair")
    return settings.model_copy(update={"service": service})


def effective(settings: Settings) -> Iterator[tuple[Option, str]]:
    """Each option with its effective value as text; secrets appear as `********`."""
    for option in options():
        value = getattr(getattr(settings, option.group), option.name)
        if option.form.startswith("a size") and isinstance(value, int):
            yield option, format_size(value)
        else:
            yield option, render_value(value, secret=option.secret)


def redact_url(url: str) -> str:
    """A URL with its password, and any secret in its query string (`?password=`), masked, for
    logs, `mxrelay config` and `/api/v1/info`. Parsed as the store parses it (SQLAlchemy's URL):
    a generated password may hold `/`, `:` or `?`, which a pattern over the text would cut
    short. A value that does not parse is shown only up to its scheme."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        scheme, separator, _ = url.partition("://")
        return f"{scheme}://{MASK}" if separator else MASK
    query = dict(parsed.query)
    hidden = redact(query)
    if parsed.password is None and hidden == query:
        return url  # nothing to hide: shown as written
    # Rendered with a placeholder that URL quoting leaves alone, then shown as MASK.
    hidden = {key: _HIDDEN if value == MASK else value for key, value in hidden.items()}
    if parsed.password is not None:
        parsed = parsed.set(password=_HIDDEN)
    return parsed.set(query=hidden).render_as_string(hide_password=False).replace(_HIDDEN, MASK)


_HIDDEN = "mxrelayhiddenvalue"


def render_value(value: object, *, secret: bool = False) -> str:
    if value is None or value == "" or value == ():
        return ""
    if secret:
        return MASK
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple | list):
        return ",".join(render_value(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return str(value)
