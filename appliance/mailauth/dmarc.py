"""DMARC (RFC 7489): record discovery, organizational domain, alignment and policy.

The organizational domain comes from the Public Suffix List shipped inside the
``publicsuffixlist`` package (read from disk once, never fetched at run time).
"""

from __future__ import annotations

import email.utils
import functools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Literal

from publicsuffixlist import PublicSuffixList

from appliance.dns import DnsError, NoData, NoSuchDomain, Resolver
from appliance.mailauth.dkim_check import DkimOutcome
from appliance.mailauth.spf import SpfOutcome

log = logging.getLogger(__name__)

Policy = Literal["none", "quarantine", "reject"]
DmarcResult = Literal["none", "pass", "fail", "temperror", "permerror"]
_POLICIES: tuple[Policy, ...] = ("none", "quarantine", "reject")


class DmarcRecordError(ValueError):
    """A DMARC record that cannot be used."""


@dataclass(frozen=True)
class DmarcRecord:
    p: Policy
    sp: Policy | None = None
    pct: int = 100
    adkim: Literal["r", "s"] = "r"
    aspf: Literal["r", "s"] = "r"


@dataclass(frozen=True)
class DmarcOutcome:
    result: DmarcResult
    header_from: str  # RFC5322.From domain ("" when missing)
    policy: Policy = "none"  # the published policy that applies (p or sp)
    disposition: Policy = "none"  # what to do after pct sampling (none when passing)
    reason: str = ""


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """RFC 7489 3.2: the public suffix plus one label (the domain itself if none)."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def aligned(a: str, b: str, mode: Literal["r", "s"]) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if not a or not b:
        return False
    if mode == "s":
        return a == b  # RFC 7489 3.1.1: strict alignment needs identical domains
    return organizational_domain(a) == organizational_domain(b)  # relaxed: same org domain


def parse_record(text: str) -> DmarcRecord:
    """RFC 7489 6.3/6.4: tag=value pairs; v=DMARC1 first; p required (see 6.6.3)."""
    tags: dict[str, str] = {}
    parts = [p.strip() for p in text.split(";")]
    for part in parts:
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise DmarcRecordError(f"malformed tag {part!r}")
        tags.setdefault(name.strip().lower(), value.strip())
    first = parts[0].replace(" ", "")
    if first.lower() != "v=dmarc1" or tags.get("v") != "DMARC1":
        raise DmarcRecordError("record does not start with v=DMARC1")
    p = tags.get("p", "").lower()
    if p not in _POLICIES:
        # RFC 7489 6.6.3: a missing/invalid p with a valid rua is treated as p=none.
        if "rua" in tags:
            p = "none"
        else:
            raise DmarcRecordError(f"invalid p={tags.get('p', '')!r}")
    sp_raw = tags.get("sp", "").lower()
    sp = sp_raw if sp_raw in _POLICIES else None
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        pct = 100
    pct = min(max(pct, 0), 100)
    adkim = "s" if tags.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if tags.get("aspf", "r").lower() == "s" else "r"
    return DmarcRecord(p=p, sp=sp, pct=pct, adkim=adkim, aspf=aspf)  # type: ignore[arg-type]


def from_domain(headers: Message) -> tuple[str, str]:
    """The RFC5322.From domain and an error text ("" when exactly one domain is found)."""
    values = headers.get_all("From") or []
    if len(values) != 1:
        return "", f"{len(values)} From fields"
    addrs = email.utils.getaddresses([str(values[0])])
    domains = {a.rpartition("@")[2].lower().rstrip(".") for _, a in addrs if "@" in a}
    if len(domains) != 1:
        # RFC 7489 6.6.1: no single From domain -> DMARC cannot be applied.
        return "", "From does not name exactly one domain"
    return domains.pop(), ""


async def _fetch(resolver: Resolver, domain: str) -> DmarcRecord | None:
    try:
        texts = await resolver.lookup(f"_dmarc.{domain}", "TXT")
    except (NoSuchDomain, NoData):
        return None
    records = [t for t in texts if t.replace(" ", "").lower().startswith("v=dmarc1")]
    if len(records) != 1:
        return None  # RFC 7489 6.6.3: zero or several records -> no DMARC policy
    return parse_record(records[0])


async def discover(resolver: Resolver, domain: str) -> tuple[DmarcRecord | None, bool]:
    """RFC 7489 6.6.3: query the From domain, then its organizational domain.

    Returns (record, found_at_org_domain). Raises DnsError (temporary) and
    DmarcRecordError (permanent)."""
    record = await _fetch(resolver, domain)
    if record is not None:
        return record, False
    org = organizational_domain(domain)
    if org != domain:
        record = await _fetch(resolver, org)
        if record is not None:
            return record, True
    return None, False


def _lower(policy: Policy) -> Policy:
    return "quarantine" if policy == "reject" else "none"


async def evaluate(
    resolver: Resolver,
    headers: Message,
    spf: SpfOutcome,
    dkim_results: Sequence[DkimOutcome],
    rng: random.Random,
) -> DmarcOutcome:
    domain, problem = from_domain(headers)
    if not domain:
        return DmarcOutcome("permerror" if problem else "none", "", reason=problem)
    try:
        record, at_org = await discover(resolver, domain)
    except DnsError as exc:
        log.info("dmarc=temperror domain=%s reason=%s", domain, exc)
        return DmarcOutcome("temperror", domain, reason="DNS failure")
    except DmarcRecordError as exc:
        return DmarcOutcome("permerror", domain, reason=str(exc))
    if record is None:
        return DmarcOutcome("none", domain)
    # RFC 7489 6.3: sp applies to subdomains found through the organizational domain.
    policy: Policy = record.sp if (at_org and record.sp) else record.p
    # RFC 7489 4.2: pass if an aligned identifier passed SPF or DKIM.
    dkim_ok = any(
        d.result == "pass" and aligned(d.domain, domain, record.adkim) for d in dkim_results
    )
    spf_ok = spf.result == "pass" and aligned(spf.domain, domain, record.aspf)
    if dkim_ok or spf_ok:
        return DmarcOutcome("pass", domain, policy, "none")
    # An aligned identifier that could not be checked (DNS failure) might have passed:
    # the result is undetermined, never a failure that rejects good mail.
    dkim_temp = any(
        d.result == "temperror" and aligned(d.domain, domain, record.adkim) for d in dkim_results
    )
    spf_temp = spf.result == "temperror" and aligned(spf.domain, domain, record.aspf)
    if dkim_temp or spf_temp:
        return DmarcOutcome("temperror", domain, policy, "none", "aligned check failed on DNS")
    disposition = policy
    # RFC 7489 6.6.4: pct samples messages; the rest get the next lower policy.
    if record.pct < 100 and rng.random() * 100 >= record.pct:
        disposition = _lower(policy)
    return DmarcOutcome("fail", domain, policy, disposition, "no aligned pass")
