"""Build the inbound filter chain from the config: call once at start-up (and on reload).

    filters, recipient_filters = build_filters(env)

Order (the pipeline stops at the first reject/tempfail): DNSBL, greylisting (only when
rspamd is off), ClamAV, mailauth (SPF/DKIM/DMARC/ARC), rspamd. Recipient filters: Sieve.
The filters service (appliance.filters.service) runs it and registers the sieve.* ctl
commands.
"""

from __future__ import annotations

from typing import Protocol

from appliance import config
from appliance.dns import DnsResolver, Resolver
from appliance.filters.base import Filter, RecipientFilter
from appliance.filters.clamav import ClamavFilter, ClamdClient
from appliance.filters.dnsbl import DnsblFilter
from appliance.filters.greylist import Greylist, GreylistFilter, GreylistSettings
from appliance.filters.learning import client_for
from appliance.filters.mailauth import MailAuthFilter, MailAuthSettings
from appliance.filters.rspamd import RspamdFilter, SpamThresholds
from appliance.filters.sieve_filter import Replies, SieveFilter
from appliance.filters.sieve_store import SieveStore, store_for
from appliance.filters.sieve_vacation import VacationTracker


class Context(Protocol):
    """What the filters are built from."""

    @property
    def config(self) -> config.Config: ...

    @property
    def dns(self) -> DnsResolver: ...

    @property
    def replies(self) -> Replies: ...


def sieve_store(ctx: Context) -> SieveStore:
    """The per-user script store (the web UI builds the same from config.data_dir)."""
    return store_for(ctx.config.data_dir)


def build_filters(
    ctx: Context, resolver: Resolver | None = None
) -> tuple[list[Filter], list[RecipientFilter]]:
    """Blocking (opens SQLite files): call before the loop serves, or in a thread."""
    cfg = ctx.config
    f = cfg.filters
    dns = resolver or ctx.dns.with_timeout(float(f.dns_timeout))  # the daemon's one cache
    filters: list[Filter] = []
    if f.dnsbl and not f.rspamd:
        filters.append(DnsblFilter(dns, f.dnsbl, f.dnsbl_action))
    if f.greylist and not f.rspamd:
        settings = GreylistSettings(
            delay=f.greylist_delay,
            retry_window=f.greylist_retry_window,
            whitelist_days=f.greylist_whitelist_days,
        )
        filters.append(GreylistFilter(Greylist(cfg.data_dir / "greylist.sqlite", settings)))
    if f.clamav:
        filters.append(ClamavFilter(ClamdClient(f.clamd_socket), cfg.hostname, f.clamav_tempfail))
    if f.mailauth:
        auth = MailAuthSettings(
            hostname=cfg.hostname,
            enforce_dmarc=f.dmarc_enforce,
            dns_tempfail=f.dns_tempfail,
            timeout=float(f.dns_timeout) * 4,
        )
        filters.append(MailAuthFilter(dns, auth))
    if f.rspamd:
        thresholds = SpamThresholds(f.spam_header_score, f.spam_junk_score, f.spam_reject_score)
        filters.append(RspamdFilter(client_for(f), thresholds))
    recipient_filters: list[RecipientFilter] = []
    if f.sieve:
        root = cfg.data_dir / "sieve"
        recipient_filters.append(
            SieveFilter(
                sieve_store(ctx),
                cfg.hostname,
                replies=ctx.replies,
                tracker=VacationTracker(root / "vacation.sqlite"),
            )
        )
    return filters, recipient_filters
