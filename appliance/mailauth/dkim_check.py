"""DKIM (RFC 6376) and ARC (RFC 8617) verification with dkimpy on the injected resolver.

dkimpy is synchronous: verification runs in a worker thread, and its ``dnsfunc`` hands
each key lookup back to the event loop's :class:`Resolver`. A DNS failure while
fetching a key gives ``temperror`` for that signature, never an exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from appliance.dns import DnsError, NoData, NoSuchDomain, Resolver

log = logging.getLogger(__name__)

DkimResult = Literal["none", "pass", "fail", "neutral", "temperror", "permerror"]
ArcResult = Literal["none", "pass", "fail"]
MAX_SIGNATURES = 8  # verify at most this many DKIM-Signature fields per message


@dataclass(frozen=True)
class DkimOutcome:
    result: DkimResult
    domain: str = ""
    selector: str = ""
    header_b: str = ""  # first characters of b= (RFC 6008) to tell signatures apart
    reason: str = ""


@dataclass(frozen=True)
class ArcOutcome:
    result: ArcResult
    reason: str = ""
    instances: int = 0


class _KeyFetcher:
    """A dkimpy ``dnsfunc`` that runs each TXT lookup on the event loop."""

    def __init__(self, resolver: Resolver, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.resolver = resolver
        self.loop = loop
        self.timeout = timeout
        self.temporary = False
        self.missing = False

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        host = name.decode("ascii", "replace").rstrip(".")
        future = asyncio.run_coroutine_threadsafe(self.resolver.lookup(host, "TXT"), self.loop)
        try:
            texts = future.result(self.timeout)
        except (NoSuchDomain, NoData):
            self.missing = True
            return None
        except (DnsError, FutureTimeout):
            future.cancel()
            self.temporary = True
            return None
        if not texts:
            return None
        # Several TXT records at a selector: use the one that carries a key (p=).
        keyed = [t for t in texts if "p=" in t.replace(" ", "")]
        return (keyed or texts)[0].encode("utf-8")


def _signature_tags(value: bytes) -> dict[bytes, bytes]:
    try:
        return dict(parse_tag_value(value))
    except InvalidTagValueList:
        return {}


def _header_section(message: bytes) -> bytes:
    """The header lines as dkimpy reads them: up to the first empty line (CRLF or LF)."""
    if message[:1] == b"\n" or message[:2] == b"\r\n":
        return b""
    ends = [i for i in (message.find(b"\n\n"), message.find(b"\n\r\n")) if i >= 0]
    return message[: min(ends)] if ends else message


def _mentions(message: bytes, name: bytes) -> bool:
    """Whether ``name`` occurs anywhere in the header section, in any case.

    A cheap, conservative test run before dkimpy, which splits the whole message (body
    included) into lines on every construction: for the unsigned majority of mail that
    parse was most of the CPU spent receiving a 100 KB message.
    """
    return name in _header_section(message).lower()


def _verify_all(message: bytes, fetch_factory: Callable[[], _KeyFetcher]) -> list[DkimOutcome]:
    if not _mentions(message, b"dkim-signature"):
        return []
    verifier = dkim.DKIM(message, minkey=1024)  # one parse serves every signature
    sigs = [v for k, v in verifier.headers if k.lower() == b"dkim-signature"]
    outcomes: list[DkimOutcome] = []
    for idx, raw in enumerate(sigs[:MAX_SIGNATURES]):
        tags = _signature_tags(raw)
        domain = tags.get(b"d", b"").decode("ascii", "replace").lower()
        selector = tags.get(b"s", b"").decode("ascii", "replace")
        header_b = b"".join(tags.get(b"b", b"").split())[:8].decode("ascii", "replace")
        fetch = fetch_factory()
        try:
            ok = verifier.verify(idx=idx, dnsfunc=fetch)
        except dkim.ValidationError as exc:
            # RFC 6376 3.7: a body hash that does not match fails the signature.
            bad: DkimResult = "fail" if "body hash" in str(exc) else "permerror"
            outcomes.append(DkimOutcome(bad, domain, selector, header_b, str(exc)[:60]))
            continue
        except dkim.DKIMException as exc:
            # RFC 6376 6.1.1: a malformed signature is a PERMFAIL.
            outcomes.append(DkimOutcome("permerror", domain, selector, header_b, str(exc)[:60]))
            continue
        except Exception as exc:  # dkimpy on hostile input: never let it fail the delivery
            log.warning("dkim=verifier-crash domain=%s error=%r", domain, exc)
            outcomes.append(DkimOutcome("permerror", domain, selector, header_b, "unverifiable"))
            continue
        if ok:
            result: DkimResult = "pass"
            reason = ""
        elif fetch.temporary:
            result, reason = "temperror", "key lookup failed"  # RFC 6376 6.1.2: TEMPFAIL
        elif fetch.missing:
            result, reason = "permerror", "no key for signature"  # RFC 6376 6.1.2: PERMFAIL
        else:
            result, reason = "fail", "signature did not verify"
        outcomes.append(DkimOutcome(result, domain, selector, header_b, reason))
    return outcomes


async def verify_dkim(
    resolver: Resolver, message: bytes, key_timeout: float = 10.0
) -> list[DkimOutcome]:
    """One outcome per DKIM-Signature field (empty list: the message is unsigned)."""
    loop = asyncio.get_running_loop()

    def factory() -> _KeyFetcher:
        return _KeyFetcher(resolver, loop, key_timeout)

    try:
        return await asyncio.to_thread(_verify_all, message, factory)
    except Exception as exc:  # unparsable message: report, never fail the delivery
        log.info("dkim=permerror reason=%r", exc)
        return [DkimOutcome("permerror", reason="message not parsable")]


def _arc(message: bytes, fetch: _KeyFetcher) -> ArcOutcome:
    if not _mentions(message, b"arc-"):
        return ArcOutcome("none", "Message is not ARC signed", 0)
    try:
        cv, results, reason = dkim.arc_verify(message, dnsfunc=fetch)
    except dkim.DKIMException as exc:
        return ArcOutcome("fail", str(exc)[:60])
    except Exception as exc:  # dkimpy on hostile input
        log.warning("arc=verifier-crash error=%r", exc)
        return ArcOutcome("fail", "unverifiable")
    count = len(results)
    if cv == dkim.CV_Pass:
        return ArcOutcome("pass", "", count)
    if cv == dkim.CV_None:
        return ArcOutcome("none", str(reason), 0)
    if fetch.temporary:
        # RFC 8617 has no temperror: report fail with the reason in the comment.
        return ArcOutcome("fail", "key lookup failed", count)
    return ArcOutcome("fail", str(reason), count)


async def verify_arc(resolver: Resolver, message: bytes, key_timeout: float = 10.0) -> ArcOutcome:
    """RFC 8617 5.2: validate the ARC chain; none when the message carries no ARC set."""
    fetch = _KeyFetcher(resolver, asyncio.get_running_loop(), key_timeout)
    return await asyncio.to_thread(_arc, message, fetch)
