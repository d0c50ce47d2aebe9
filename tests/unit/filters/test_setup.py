"""[filters] config validation and the filter chain build_filters makes from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance import config
from appliance.dns import DnsResolver
from appliance.filters.setup import build_filters
from tests.dnsfake import FakeResolver


@dataclass
class Queue:
    def enqueue(self, sender: str, recipients: Sequence[str], message: Path) -> str:
        return "q1"


@dataclass
class Ctx:
    config: config.Config
    queue: Queue
    replies: Any = None  # the notifier's; untouched while the chain is built


def cfg(tmp_path: Path, filters: dict[str, Any]) -> config.Config:
    return config.from_mapping({"data_dir": str(tmp_path), "filters": filters}, tmp_path)


def names(tmp_path: Path, filters: dict[str, Any]) -> tuple[list[str], list[str]]:
    ctx = Ctx(cfg(tmp_path, filters), Queue())
    inbound, per_rcpt = build_filters(ctx, FakeResolver())
    return [f.name for f in inbound], [f.name for f in per_rcpt]


def test_defaults(tmp_path: Path) -> None:
    c = cfg(tmp_path, {})
    assert c.filters.mailauth and c.filters.sieve and not c.filters.rspamd
    assert names(tmp_path, {}) == (["mailauth"], ["sieve"])


def test_builtin_path_when_rspamd_off(tmp_path: Path) -> None:
    chain = names(tmp_path, {"dnsbl": ["zen.example"], "greylist": True, "clamav": True})
    assert chain == (["dnsbl", "greylist", "clamav", "mailauth"], ["sieve"])
    assert (tmp_path / "greylist.sqlite").exists()


def test_rspamd_replaces_builtin_spam_checks(tmp_path: Path) -> None:
    chain = names(
        tmp_path, {"rspamd": True, "dnsbl": ["zen.example"], "greylist": True, "sieve": False}
    )
    assert chain == (["mailauth", "rspamd"], [])


def test_values_parsed(tmp_path: Path) -> None:
    f = cfg(
        tmp_path,
        {
            "spam_header_score": 4,
            "spam_junk_score": 7.5,
            "spam_reject_score": 20,
            "dnsbl": ["Zen.Example."],
            "dnsbl_action": "junk",
            "clamd_socket": "127.0.0.1:3310",
            "rspamd_password_file": "secret",
        },
    ).filters
    assert (f.spam_header_score, f.spam_junk_score, f.spam_reject_score) == (4.0, 7.5, 20.0)
    assert f.dnsbl == ("zen.example",) and f.dnsbl_action == "junk"
    assert f.rspamd_password_file == tmp_path / "secret"


@pytest.mark.parametrize(
    ("filters", "key"),
    [
        ({"nope": 1}, "filters.nope"),
        ({"rspamd": "yes"}, "filters.rspamd"),
        ({"rspamd_url": "ftp://x"}, "filters.rspamd_url"),
        ({"dnsbl": "zen.example"}, "filters.dnsbl"),
        ({"dnsbl_action": "drop"}, "filters.dnsbl_action"),
        ({"spam_junk_score": 20, "spam_reject_score": 10}, "filters.spam_junk_score"),
        ({"spam_header_score": True}, "filters.spam_header_score"),
        ({"dns_timeout": 0}, "filters.dns_timeout"),
        ({"clamd_socket": ""}, "filters.clamd_socket"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, filters: dict[str, Any], key: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        cfg(tmp_path, filters)
    assert info.value.key == key


def test_service_rebuilds_chain_on_reload(tmp_path: Path) -> None:
    import asyncio

    from appliance.filters.base import FilterChain
    from appliance.filters.service import FiltersService

    @dataclass
    class DaemonCtx:
        config: config.Config
        queue: Queue
        ctl_handlers: dict[str, Any]
        dns: DnsResolver
        replies: Any = None

    off = cfg(tmp_path, {"mailauth": False, "sieve": False})
    ctx = DaemonCtx(off, Queue(), {}, DnsResolver(nameservers=["127.0.0.1"]))
    chain = FilterChain()
    svc = FiltersService(
        ctx.config,
        ctx.dns,
        chain,
        ctx.ctl_handlers,
        replies=ctx.replies,
    )
    asyncio.run(svc.start())
    assert svc.status() == {"filters": [], "recipient_filters": []}
    assert "sieve.save" in ctx.ctl_handlers
    ctx.config = cfg(tmp_path, {"greylist": True})
    asyncio.run(svc.reload(ctx.config))
    assert svc.status() == {"filters": ["greylist", "mailauth"], "recipient_filters": ["sieve"]}


def test_reload_closes_the_replaced_chain_after_its_last_run(tmp_path: Path) -> None:
    """A rebuilt chain replaces the old one; the old greylist and vacation databases
    are closed, but only once no pipeline run holds the old chain any more."""
    import asyncio
    import sqlite3

    from appliance.filters.base import FilterChain
    from appliance.filters.greylist import GreylistFilter
    from appliance.filters.service import FiltersService
    from appliance.filters.sieve_filter import SieveFilter

    first = cfg(tmp_path, {"greylist": True, "mailauth": False})
    chain = FilterChain()
    dns = DnsResolver(nameservers=["127.0.0.1"])
    svc = FiltersService(
        first,
        dns,
        chain,
        {},
        replies=None,  # type: ignore[arg-type]
    )

    async def main() -> None:
        await svc.start()
        old = chain.current
        [grey] = [f for f in old.filters if isinstance(f, GreylistFilter)]
        [sieve] = [f for f in old.recipient_filters if isinstance(f, SieveFilter)]
        assert sieve.tracker is not None
        async with chain.use() as held:  # a delivery in progress
            assert held is old
            await svc.reload(cfg(tmp_path, {"greylist": True, "mailauth": True}))
            assert chain.current is not old
            grey.greylist._db.execute("SELECT 1")  # still open while the run holds it
        with pytest.raises(sqlite3.ProgrammingError):
            grey.greylist._db.execute("SELECT 1")
        with pytest.raises(sqlite3.ProgrammingError):
            sieve.tracker._db.execute("SELECT 1")
        new = chain.current
        await svc.stop()  # stop closes the chain in force too
        [grey2] = [f for f in new.filters if isinstance(f, GreylistFilter)]
        with pytest.raises(sqlite3.ProgrammingError):
            grey2.greylist._db.execute("SELECT 1")

    asyncio.run(main())
