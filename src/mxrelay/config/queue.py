"""The queue's and the delivery workers' settings: the retry schedule, the queue lifetime,
concurrency, the delivery process, leases, polling and fault probes.

Read by `delivery/`.
"""

from __future__ import annotations

from mxrelay.config.values import (
    Duration,
    SettingsGroup,
    duration_setting,
    int_setting,
    setting,
)


class QueueSettings(SettingsGroup):
    retry_initial: Duration = duration_setting(
        "1m",
        env="MXRELAY_RETRY_INITIAL",
        least="100ms",
        most="1d",
        help="Delay before the first retry of a deferred delivery.",
    )
    retry_max: Duration = duration_setting(
        "1h",
        env="MXRELAY_RETRY_MAX",
        least="100ms",
        most="7d",
        help="Longest delay between retries (exponential backoff with full jitter up to it).",
    )
    lifetime: Duration = duration_setting(
        "5d",
        env="MXRELAY_QUEUE_LIFETIME",
        least="0s",
        most="100d",
        note="0s = one attempt",
        help="Age after which a message that still fails temporarily is given up (dead letter).",
    )
    concurrency: int = int_setting(
        16,
        env="MXRELAY_DELIVERY_CONCURRENCY",
        least=1,
        most=1000,
        help="Deliveries in progress at once in this process.",
    )
    delivery_process: bool = setting(
        True,
        env="MXRELAY_DELIVERY_PROCESS",
        form="true or false",
        help="smtp mode: deliver from a child process, so accepting and delivering use two cores "
        "(false: one process does both).",
    )
    delivery_process_nice: int = int_setting(
        10,
        env="MXRELAY_DELIVERY_PROCESS_NICE",
        least=0,
        most=19,
        help="How much lower the delivery process's CPU priority is than the relay's (its nice "
        "value, added): when the CPUs are busy, the SMTP clients, each waiting for a reply, are "
        "served first and delivery works off the queue with the rest (0: the same priority).",
    )
    lease_time: Duration = duration_setting(
        "60s",
        env="MXRELAY_QUEUE_LEASE_TIME",
        least="1s",
        most="1h",
        help="How long a claimed entry stays with its replica without a renewal; a replica that "
        "dies loses its entries to the others once their leases expire.",
    )
    poll_interval: Duration = duration_setting(
        "1s",
        env="MXRELAY_QUEUE_POLL_INTERVAL",
        least="10ms",
        most="1m",
        help="Longest wait between looks at the queue (new mail wakes this process at once).",
    )
    probe_interval: Duration = duration_setting(
        "1m",
        env="MXRELAY_DELIVERY_PROBE_INTERVAL",
        least="100ms",
        most="1d",
        help="While a configuration fault holds mail, how often the transport is probed again.",
    )
