"""The DNS records a domain needs for this box, and a live check of each one.

:func:`expected_records` (appliance.dnsrecords, shared with `pillarbox dns`) says what
to publish; :func:`check_all` looks each record up
through the box's DNS interface (:class:`appliance.dns.SyncLookup`: dnspython in
production, the test suite's fake in tests) and rates it ok / warning / error with the
value found. Lookups run in a small thread pool so one slow name server does not add up
across fifteen records.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import dns.reversename

from appliance import config
from appliance.dns import DnsError, NoData, NoSuchDomain, RdType, SyncLookup
from appliance.dnsrecords import Record, expected_records, mta_sts_id, mta_sts_policy

__all__ = [
    "Check",
    "Record",
    "Status",
    "check_all",
    "expected_records",
    "mta_sts_id",
    "mta_sts_policy",
    "published",
    "summary",
]

log = logging.getLogger(__name__)

Status = Literal["ok", "warning", "error"]


def published(resolver: SyncLookup, name: str, rdtype: RdType) -> list[str]:
    """The values published; [] when the name or type does not exist. Raises DnsError
    (temporary) when the name servers did not answer: neither yes nor no."""
    try:
        return resolver.lookup(name, rdtype)
    except (NoSuchDomain, NoData):
        return []


@dataclass(frozen=True)
class Check:
    record: Record
    status: Status
    found: tuple[str, ...]
    detail: str


def _norm_txt(value: str) -> str:
    return " ".join(value.replace(";", "; ").split()).lower()


def check_record(rec: Record, resolver: SyncLookup, cfg: config.Config) -> Check:
    try:
        return _check(rec, resolver, cfg)
    except DnsError:
        return Check(rec, "warning", (), "The DNS servers did not answer. Try later.")


def _check(rec: Record, resolver: SyncLookup, cfg: config.Config) -> Check:
    missing: Status = "error" if rec.required else "warning"
    if rec.rdtype == "PTR":
        return _check_ptr(rec, resolver, cfg)
    found = published(resolver, rec.name, rec.rdtype)
    if rec.rdtype == "CNAME" and not found:
        found = published(resolver, rec.name, "A")
        if found:
            return Check(rec, "ok", tuple(found), "Found as an address record; fine.")
    got = tuple(found)
    if rec.rdtype == "TXT":
        return _check_txt(rec, got, cfg, missing)
    if not found:
        return Check(rec, missing, got, "Not published yet.")
    if rec.rdtype == "MX":
        hosts = {v.split()[-1].rstrip(".").lower() for v in found}
        if cfg.hostname not in hosts:
            return Check(
                rec, "error", got, f"Mail goes elsewhere; the MX must name {cfg.hostname}."
            )
    if rec.rdtype == "SRV":
        want = rec.value.split()[2:]
        if not any(v.split()[2:] == want for v in found):
            return Check(rec, "warning", got, "Published, but with another host or port.")
    if rec.rdtype == "CNAME" and cfg.hostname not in {v.rstrip(".").lower() for v in found}:
        return Check(rec, "warning", got, f"Points elsewhere; it should point to {cfg.hostname}.")
    return Check(rec, "ok", got, "Published.")


def _check_txt(rec: Record, got: tuple[str, ...], cfg: config.Config, missing: Status) -> Check:
    if "._domainkey." in rec.name:
        if not rec.value:
            return Check(rec, "error", got, "No signing key: mail goes out unsigned.")
        if any(_norm_txt(v) == _norm_txt(rec.value) for v in got):
            return Check(rec, "ok", got, "Published.")
        if got:
            return Check(rec, "error", got, "A different key is published; copy the new value.")
        return Check(rec, missing, got, "Not published yet.")
    prefix = rec.value.split(";")[0].split()[0].lower()
    matching = tuple(v for v in got if v.lower().startswith(prefix))
    if not matching:
        return Check(rec, missing, got, "Not published yet.")
    if len(matching) > 1:
        return Check(rec, "error", matching, "There must be only one such record; merge them.")
    if prefix == "v=spf1":
        tokens = matching[0].lower().split()
        if "mx" not in tokens and f"a:{cfg.hostname}" not in tokens:
            return Check(
                rec, "warning", matching, "SPF exists but does not name this box (add mx)."
            )
    return Check(rec, "ok", matching, "Published.")


def _check_ptr(rec: Record, resolver: SyncLookup, cfg: config.Config) -> Check:
    addresses = published(resolver, cfg.hostname, "A")
    if not addresses:
        return Check(rec, "error", (), "Publish the box's IPv4 address (A record) first.")
    names: list[str] = []
    for ip in addresses:
        names += published(resolver, dns.reversename.from_address(ip).to_text(), "PTR")
    if cfg.hostname in {n.rstrip(".").lower() for n in names}:
        return Check(rec, "ok", tuple(names), "Your provider has set it.")
    return Check(rec, "error", tuple(names), "Not set to this box's name yet.")


def check_all(cfg: config.Config, domain: str, resolver: SyncLookup) -> list[Check]:
    """Every record checked at once: the page waits for the slowest lookup, not the sum."""
    records = expected_records(cfg, domain)
    with ThreadPoolExecutor(max_workers=len(records), thread_name_prefix="dns-check") as pool:
        return list(pool.map(lambda r: check_record(r, resolver, cfg), records))


def summary(checks: Iterable[Check]) -> Status:
    statuses = {c.status for c in checks}
    if "error" in statuses:
        return "error"
    return "warning" if "warning" in statuses else "ok"
