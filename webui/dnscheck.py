"""The DNS records a domain needs for this box, and a live check of each one.

:func:`expected_records` says what to publish; :func:`check_all` looks each record up
through the box's DNS interface (:class:`appliance.dns.SyncLookup`: dnspython in
production, the test suite's fake in tests) and rates it ok / warning / error with the
value found. Lookups run in a small thread pool so one slow name server does not add up
across fifteen records.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import dns.reversename

from appliance import config
from appliance.dns import DnsError, NoData, NoSuchDomain, RdType, SyncLookup
from appliance.queue import dkim

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
class Record:
    """One record to publish at the DNS provider."""

    purpose: str
    name: str
    rdtype: RdType
    value: str
    required: bool
    help: str


@dataclass(frozen=True)
class Check:
    record: Record
    status: Status
    found: tuple[str, ...]
    detail: str


def dkim_records(cfg: config.Config, domain: str) -> list[tuple[str, str]]:
    """(name, TXT value) pairs of the domain's DKIM keys (created on first need)."""
    try:
        return [(n.rstrip("."), v) for n, v in dkim.dns_records(cfg, domain)]
    except (OSError, ValueError, dkim.DkimError) as exc:
        log.warning("dns=dkim-records-failed domain=%s error=%s", domain, exc)
        return []


def mta_sts_policy(cfg: config.Config) -> str:
    """RFC 8461 3.2 policy text; mode testing until the admin has a public certificate."""
    return f"version: STSv1\r\nmode: testing\r\nmx: {cfg.hostname}\r\nmax_age: 604800\r\n"


def mta_sts_id(cfg: config.Config) -> str:
    """RFC 8461 3.1: changes whenever the policy text changes."""
    return hashlib.sha256(mta_sts_policy(cfg).encode()).hexdigest()[:16]


def expected_records(cfg: config.Config, domain: str) -> list[Record]:
    host = cfg.hostname
    recs = [
        Record(
            "Incoming mail (MX)",
            domain,
            "MX",
            f"10 {host}",
            True,
            "Tells other mail servers to deliver mail for your domain to this box.",
        ),
        Record(
            "Box address (IPv4)",
            host,
            "A",
            "your public IPv4 address",
            True,
            "The address of your internet connection, pointing at this box.",
        ),
        Record(
            "Box address (IPv6)",
            host,
            "AAAA",
            "your public IPv6 address",
            False,
            "Only if your internet connection has IPv6.",
        ),
        Record(
            "Sender check (SPF)",
            domain,
            "TXT",
            "v=spf1 mx -all",
            True,
            "Says that only this box may send mail for your domain.",
        ),
    ]
    dkim = dkim_records(cfg, domain)
    if dkim:
        recs += [
            Record(
                "Signature key (DKIM)",
                name,
                "TXT",
                value,
                True,
                "Lets receivers verify that mail really comes from you.",
            )
            for name, value in dkim
        ]
    else:
        recs.append(
            Record(
                "Signature key (DKIM)",
                f"{cfg.dkim.selector}._domainkey.{domain}",
                "TXT",
                "",
                True,
                "The signing key could not be read or created; the system log says why.",
            )
        )
    recs += [
        Record(
            "Policy (DMARC)",
            f"_dmarc.{domain}",
            "TXT",
            f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}",
            True,
            "Tells receivers what to do with mail that fails SPF and DKIM.",
        ),
        Record(
            "Encryption policy (MTA-STS)",
            f"_mta-sts.{domain}",
            "TXT",
            f"v=STSv1; id={mta_sts_id(cfg)}",
            False,
            "Asks senders to always use encryption (RFC 8461).",
        ),
        Record(
            "MTA-STS policy host",
            f"mta-sts.{domain}",
            "CNAME",
            host,
            False,
            "Where senders fetch the encryption policy over HTTPS. Once this name points"
            " here, the next Let's Encrypt certificate covers it too.",
        ),
        Record(
            "TLS reports (TLSRPT)",
            f"_smtp._tls.{domain}",
            "TXT",
            f"v=TLSRPTv1; rua=mailto:postmaster@{domain}",
            False,
            "Receivers report encryption problems to postmaster (RFC 8460).",
        ),
        Record(
            "Client setup (autoconfig)",
            f"autoconfig.{domain}",
            "CNAME",
            host,
            False,
            "Thunderbird and others find the settings by themselves.",
        ),
    ]
    ports = {
        "_imaps._tcp": cfg.listeners.imaps,
        "_submissions._tcp": cfg.listeners.submissions,
        "_submission._tcp": cfg.listeners.submission,
        "_pop3s._tcp": cfg.listeners.pop3s,
    }
    for label, listen in ports.items():
        if listen:
            recs.append(
                Record(
                    f"Client setup ({label.split('.')[0][1:].upper()} SRV)",
                    f"{label}.{domain}",
                    "SRV",
                    f"0 1 {listen[0].port} {host}",
                    False,
                    "RFC 6186 / 8314 service record for mail programs.",
                )
            )
    recs.append(
        Record(
            "Reverse DNS (PTR)",
            "your public IPv4 address",
            "PTR",
            host,
            True,
            "Set by your internet provider, not your DNS host: ask them to name your "
            f"address {host}. Many receivers reject mail without it.",
        )
    )
    return recs


def _norm_txt(value: str) -> str:
    return " ".join(value.replace(";", "; ").split()).lower()


def check_record(rec: Record, resolver: SyncLookup, cfg: config.Config) -> Check:
    try:
        return _check(rec, resolver, cfg)
    except DnsError as exc:
        return Check(rec, "warning", (), f"The DNS servers did not answer ({exc}). Try later.")


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
