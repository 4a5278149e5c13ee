"""`Settings`: every settings group, in the order `mxrelay config` and the README list them.

Each group is declared in the module of the stage that reads it (`smtp.py`, `dns.py`, `graph.py`,
...); `load.py` fills this from the environment.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mxrelay.config.dns import DnsSettings, PolicySettings
from mxrelay.config.graph import GraphSettings
from mxrelay.config.mime import MimeSettings
from mxrelay.config.queue import QueueSettings
from mxrelay.config.service import ServiceSettings
from mxrelay.config.smtp import SmtpSettings
from mxrelay.config.store import StoreSettings
from mxrelay.config.upstream import UpstreamSettings
from mxrelay.config.web import WebSettings


class Settings(BaseSettings):
    """Every option of mxrelay, grouped by the stage that reads it."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    service: ServiceSettings = ServiceSettings()
    smtp: SmtpSettings = SmtpSettings()
    dns: DnsSettings = DnsSettings()
    policy: PolicySettings = PolicySettings()
    upstream: UpstreamSettings = UpstreamSettings()
    mime: MimeSettings = MimeSettings()
    store: StoreSettings = StoreSettings()
    queue: QueueSettings = QueueSettings()
    graph: GraphSettings = GraphSettings()
    web: WebSettings = WebSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment is read through the table by load_settings(), never ambiently.
        return (init_settings,)
