"""The "filters" service: builds the filter chain at start and rebuilds it on reload.

The chain (appliance.filters.base.FilterChain) is shared with the delivery pipeline;
this service alone replaces it, on the event loop, and the build it replaces is closed
once no pipeline run holds it. It also registers the sieve.* ctl commands (the web UI's
script editor) and reports the chain in ctl status. It listens on nothing.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from appliance.config import Config
from appliance.dns import DnsResolver
from appliance.filters.base import FilterChain
from appliance.filters.setup import build_filters, sieve_store
from appliance.filters.sieve_ctl import sieve_handlers
from appliance.filters.sieve_filter import Replies
from appliance.runtime import CtlHandlers, Service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilterEnv:
    """What build_filters reads (appliance.filters.setup.Context)."""

    config: Config
    dns: DnsResolver  # the daemon's one resolver and cache
    replies: Replies  # Sieve's replies: the box's one notifier


class FiltersService:
    name = "filters"

    def __init__(
        self,
        config: Config,
        dns: DnsResolver,
        chain: FilterChain,
        handlers: CtlHandlers,
        *,
        replies: Replies,
    ) -> None:
        self.config = config
        self.dns = dns
        self.chain = chain
        self.handlers = handlers
        self.replies = replies

    async def start(self) -> None:
        if not self.chain.filters and not self.chain.recipient_filters:
            await self._rebuild()

    async def stop(self) -> None:
        await self.chain.replace([], [])  # closes the chain once the last run is done

    async def reload(self, new: Config) -> None:
        self.config = new
        await self._rebuild()

    async def _rebuild(self) -> None:
        env = FilterEnv(self.config, self.dns, self.replies)
        try:
            filters, recipient_filters = await asyncio.to_thread(build_filters, env)
        except OSError as exc:
            log.error("filters=reload-failed reason=%s (old chain kept)", exc)
            return
        self.handlers.update(sieve_handlers(sieve_store(env)))
        await self.chain.replace(filters, recipient_filters)
        log.info(
            "filters=reloaded chain=%s recipient=%s",
            ",".join(f.name for f in filters),
            ",".join(f.name for f in recipient_filters),
        )

    def status(self) -> dict[str, Any]:
        return {
            "filters": [f.name for f in self.chain.filters],
            "recipient_filters": [f.name for f in self.chain.recipient_filters],
        }


def create(
    config: Config,
    dns: DnsResolver,
    chain: FilterChain,
    handlers: CtlHandlers,
    *,
    replies: Replies,
) -> list[Service]:
    return [FiltersService(config, dns, chain, handlers, replies=replies)]
