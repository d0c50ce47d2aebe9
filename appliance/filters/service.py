"""The "filters" service: rebuilds the filter chain when the config is reloaded.

build_context() builds the first chain (appliance.filters.setup.build_filters); this
service keeps it in step with pillarbox.toml on SIGHUP / ctl reload and reports it in
ctl status. It listens on nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from appliance.filters.setup import build_filters

if TYPE_CHECKING:
    from appliance.daemon import Context, Service

log = logging.getLogger(__name__)


class FiltersService:
    name = "filters"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def start(self) -> None:
        if not self.ctx.filters and not self.ctx.recipient_filters:
            await self.reload()

    async def stop(self) -> None:
        return None

    async def reload(self) -> None:
        try:
            filters, recipient_filters = await asyncio.to_thread(build_filters, self.ctx)
        except OSError as exc:
            log.error("filters=reload-failed reason=%s (old chain kept)", exc)
            return
        self.ctx.filters, self.ctx.recipient_filters = filters, recipient_filters
        log.info(
            "filters=reloaded chain=%s recipient=%s",
            ",".join(f.name for f in filters),
            ",".join(f.name for f in recipient_filters),
        )

    def status(self) -> dict[str, Any]:
        return {
            "filters": [f.name for f in self.ctx.filters],
            "recipient_filters": [f.name for f in self.ctx.recipient_filters],
        }


def create(ctx: Context) -> list[Service]:
    return [FiltersService(ctx)]
