"""What this box forwards to other domains, and how (remote alias targets, Sieve redirect).

Only mail from unauthenticated clients (port 25) is a forward; an authenticated local
user's mail is a submission and is DKIM-signed by the queue instead.

A forward leaves the box only when:

- the filters' verdict is not junk (spam or DMARC quarantine is never passed on), and
- this box's DMARC result (RFC 7489) is ``pass``, or ``none`` (the author domain publishes
  no policy) while the author domain is not one of this box's domains. ``fail`` under any
  policy (even p=none), ``temperror`` (DNS trouble: it would otherwise pass unchecked)
  and ``permerror`` are not forwarded. A message claiming one of our own domains must
  pass DMARC: with SRS at our domain, SPF would pass aligned at the next hop and a
  forged ``From: ceo@our-domain`` would leave looking authentic.

When the mailauth filter is off there is no DMARC result; forwards then follow the
verdict alone (the admin turned sender authentication off).

A forward that may leave is ARC-sealed with this box's Authentication-Results (the queue
does it) and gets an SRS0 envelope sender at the forwarding domain (:mod:`.srs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import authres

from appliance.filters.base import Verdict
from appliance.mailauth.results import claims_our_id

AR_NAME = "authentication-results"


@dataclass(frozen=True)
class ForwardDecision:
    allowed: bool
    reason: str  # for the log
    temporary: bool = False  # a DNS temperror: the sender may try again later
    auth_results: str = ""  # this box's Authentication-Results value, sealed into ARC


def our_results(headers: Sequence[tuple[str, str]], authserv_id: str) -> str | None:
    """This box's Authentication-Results value among the filters' headers."""
    for name, value in headers:
        if name.lower() == AR_NAME and claims_our_id(value, authserv_id):
            return value
    return None


def _dmarc(ar_value: str) -> tuple[str, str]:
    """(result, header.from) of the dmarc method in our AR value; ("", "") when absent."""
    try:
        parsed = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {ar_value}")
    except authres.core.AuthResError:
        return "permerror", ""
    for res in parsed.results:
        if res.method == "dmarc":
            domain = ""
            for prop in res.properties:
                if prop.type == "header" and prop.name == "from":
                    domain = str(prop.value).lower().rstrip(".")
            return str(res.result).lower(), domain
    return "", ""


def decide(
    verdict: Verdict, authserv_id: str, is_local_domain: Callable[[str], bool]
) -> ForwardDecision:
    """Blocking when ``is_local_domain`` is (SQLite): call from a worker thread."""
    ar = our_results(verdict.headers, authserv_id)
    if verdict.action == "junk":
        return ForwardDecision(False, "junk")
    if ar is None:
        return ForwardDecision(True, "unchecked", auth_results=f"{authserv_id}; none")
    result, author = _dmarc(ar)
    if result == "pass":
        return ForwardDecision(True, "dmarc-pass", auth_results=ar)
    if result in ("none", ""):
        if author and _ours(author, is_local_domain):
            return ForwardDecision(False, "unauthenticated-local-from")
        return ForwardDecision(True, "dmarc-none", auth_results=ar)
    if result == "temperror":
        return ForwardDecision(False, "dmarc-temperror", temporary=True)
    return ForwardDecision(False, f"dmarc-{result}")


def _ours(domain: str, is_local_domain: Callable[[str], bool]) -> bool:
    """The domain or one of its parents is served here (relaxed alignment, RFC 7489 3.1)."""
    labels = domain.split(".")
    return any(is_local_domain(".".join(labels[i:])) for i in range(len(labels) - 1))
