"""The "mailauth" Filter: SPF, DKIM, ARC and DMARC on every unauthenticated inbound message.

DMARC p=reject failing -> 550 5.7.1; p=quarantine -> junk. A DNS outage never rejects:
results become temperror and the message is accepted, or (``dns_tempfail``) 451 when the
DMARC policy could not be determined.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import logging
import random
from dataclasses import dataclass
from email.message import Message

from appliance.dns import Resolver
from appliance.filters.base import InboundMessage, Verdict
from appliance.mailauth import dmarc
from appliance.mailauth.dkim_check import verify_arc, verify_dkim
from appliance.mailauth.results import AuthOutcome, format_header
from appliance.mailauth.spf import check_spf

log = logging.getLogger(__name__)

HEADER_NAME = "Authentication-Results"


@dataclass(frozen=True)
class MailAuthSettings:
    hostname: str  # authserv-id (RFC 8601 2.5)
    enforce_dmarc: bool = True
    dns_tempfail: bool = False
    timeout: float = 20.0  # whole-check deadline per method


def _read(path: str) -> tuple[bytes, Message]:
    with open(path, "rb") as fh:
        data = fh.read()
    head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    return data, headers


class MailAuthFilter:
    name = "mailauth"

    def __init__(
        self,
        resolver: Resolver,
        settings: MailAuthSettings,
        rng: random.Random | None = None,
    ) -> None:
        self.resolver = resolver
        self.settings = settings
        self.rng = rng or random.Random()  # noqa: S311 - DMARC pct sampling, not crypto

    async def authenticate(self, msg: InboundMessage) -> AuthOutcome:
        data, headers = await asyncio.to_thread(_read, str(msg.path))
        timeout = self.settings.timeout
        spf_task = check_spf(self.resolver, msg.client_ip, msg.mail_from, msg.helo, timeout)
        spf, dkim_results, arc = await asyncio.gather(
            spf_task,
            verify_dkim(self.resolver, data, timeout),
            verify_arc(self.resolver, data, timeout),
        )
        result = await dmarc.evaluate(self.resolver, headers, spf, dkim_results, self.rng)
        return AuthOutcome(spf=spf, dkim=tuple(dkim_results), dmarc=result, arc=arc)

    async def check(self, msg: InboundMessage) -> Verdict:
        if msg.authenticated_user:
            # Authenticated submission: nothing to verify, record who sent it.
            outcome = AuthOutcome(auth_user=msg.authenticated_user)
            header = format_header(self.settings.hostname, outcome, msg.mail_from)
            return Verdict(headers=((HEADER_NAME, header),))
        outcome = await self.authenticate(msg)
        header = format_header(self.settings.hostname, outcome, msg.mail_from)
        headers = ((HEADER_NAME, header),)
        dm = outcome.dmarc
        log.info(
            "mailauth spf=%s dkim=%s dmarc=%s arc=%s from=%s ip=%s",
            outcome.spf.result if outcome.spf else "-",
            ",".join(d.result for d in outcome.dkim) or "none",
            dm.result if dm else "-",
            outcome.arc.result if outcome.arc else "-",
            dm.header_from if dm else "",
            msg.client_ip,
        )
        if dm is None:
            return Verdict(headers=headers)
        if dm.result == "temperror" and self.settings.dns_tempfail:
            return Verdict(
                "tempfail",
                headers,
                reason="Cannot verify the sender's DMARC policy now, try again later",
                smtp_code=451,
                enhanced="4.7.0",
            )
        if dm.result != "fail" or not self.settings.enforce_dmarc:
            return Verdict(headers=headers)
        # RFC 7489 7.2: an ARC chain that validates may override a failing policy
        # (RFC 8617 7.2.1); this box does not yet trust any sealer, so it is not applied.
        if dm.disposition == "reject":
            # RFC 7489 6.7 / 10.3: refuse with 550 5.7.1.
            return Verdict(
                "reject",
                headers,
                reason=f"Message rejected by the DMARC policy of {dm.header_from}",
                smtp_code=550,
                enhanced="5.7.1",
            )
        if dm.disposition == "quarantine":
            return Verdict("junk", headers, reason="DMARC quarantine")
        return Verdict(headers=headers)
