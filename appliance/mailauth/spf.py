"""SPF (RFC 7208) evaluation on an injected :class:`Resolver`.

``check_host`` returns one of none, neutral, pass, fail, softfail, temperror, permerror.
Every DNS query runs under the resolver's own timeout and an overall deadline; a DNS
failure becomes ``temperror`` and never an exception.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import urllib.parse
from dataclasses import dataclass
from typing import Literal

from appliance.dns import DnsError, NoData, NoSuchDomain, RdType, Resolver

log = logging.getLogger(__name__)

SpfResult = Literal["none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DNS_TERM_LIMIT = 10  # RFC 7208 4.6.4: at most 10 terms that cause DNS queries
VOID_LIMIT = 2  # RFC 7208 4.6.4: at most 2 void lookups
MX_PTR_LIMIT = 10  # RFC 7208 4.6.4: at most 10 MX/PTR names evaluated

_QUALIFIERS: dict[str, SpfResult] = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_MACRO = re.compile(r"%(?:\{([slodiphcrtvSLODIPHCRTV])(\d*)(r?)([.\-+,/_=]*)\}|%|_|-)")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.]*$")


class PermError(Exception):
    """The SPF record (or one it references) is broken."""


class TempError(Exception):
    """A DNS failure made the result undeterminable."""


@dataclass(frozen=True)
class SpfOutcome:
    result: SpfResult
    domain: str  # the domain checked (MAIL FROM domain, or HELO)
    scope: Literal["mailfrom", "helo"]
    reason: str = ""


def _parse_ip(text: str) -> IpAddress:
    ip = ipaddress.ip_address(text)
    # RFC 7208 5: an IPv4-mapped IPv6 address is evaluated as IPv4.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def valid_domain(domain: str) -> bool:
    # RFC 7208 4.3: a malformed or non-FQDN domain yields "none".
    labels = domain.rstrip(".").split(".")
    return (
        len(labels) >= 2
        and len(domain) <= 253
        and all(0 < len(lab) <= 63 for lab in labels)
        and domain.isascii()
    )


class _Check:
    def __init__(self, resolver: Resolver, ip: IpAddress, sender: str, helo: str) -> None:
        self.resolver = resolver
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.dns_terms = 0
        self.voids = 0

    # ---------------------------------------------------------------- DNS
    async def _query(self, name: str, rdtype: RdType) -> list[str]:
        try:
            return await self.resolver.lookup(name, rdtype)
        except (NoSuchDomain, NoData):
            self.voids += 1
            if self.voids > VOID_LIMIT:
                raise PermError("too many void DNS lookups") from None
            return []
        except DnsError as exc:
            raise TempError(str(exc)) from exc

    def _count_term(self) -> None:
        self.dns_terms += 1
        if self.dns_terms > DNS_TERM_LIMIT:
            raise PermError("more than 10 DNS-querying terms")

    async def _addresses(self, host: str) -> list[IpAddress]:
        rdtype: RdType = "A" if self.ip.version == 4 else "AAAA"
        out: list[IpAddress] = []
        for text in await self._query(host, rdtype):
            try:
                out.append(ipaddress.ip_address(text))
            except ValueError:
                continue
        return out

    # ---------------------------------------------------------------- macros
    def expand(self, spec: str, domain: str) -> str:
        local, _, sender_domain = self.sender.rpartition("@")

        def letter_value(letter: str) -> str:
            if letter == "s":
                return self.sender
            if letter == "l":
                return local or "postmaster"
            if letter == "o":
                return sender_domain
            if letter == "d":
                return domain
            if letter in ("i", "c"):
                if self.ip.version == 4 or letter == "c":
                    return str(self.ip)
                return ".".join(self.ip.exploded.replace(":", ""))
            if letter == "v":
                return "in-addr" if self.ip.version == 4 else "ip6"
            if letter == "h":
                return self.helo
            if letter == "r":
                return "unknown"
            if letter == "t":
                return "0"
            return "unknown"  # p: RFC 7208 7.3 allows "unknown" instead of a PTR walk

        def repl(m: re.Match[str]) -> str:
            whole = m.group(0)
            if whole == "%%":
                return "%"
            if whole == "%_":
                return " "
            if whole == "%-":
                return "%20"
            letter, digits, reverse, delims = m.groups()
            value = letter_value(letter.lower())
            parts = re.split("[" + re.escape(delims or ".") + "]", value)
            if reverse:
                parts.reverse()
            if digits:
                n = int(digits)
                if n == 0:
                    raise PermError("macro with zero digits")
                parts = parts[-n:]
            out = ".".join(parts)
            # RFC 7208 7.3: an uppercase macro letter URL-escapes its expansion.
            return urllib.parse.quote(out, safe="") if letter.isupper() else out

        # RFC 7208 7.1: a "%" not starting a valid macro is a syntax error.
        stripped = _MACRO.sub("", spec)
        if "%" in stripped:
            raise PermError(f"bad macro in {spec!r}")
        out = _MACRO.sub(repl, spec)
        # RFC 7208 7.3: the expanded domain is truncated from the left to 253 octets.
        while len(out) > 253 and "." in out:
            out = out.split(".", 1)[1]
        return out

    # ---------------------------------------------------------------- records
    async def record(self, domain: str) -> str | None:
        try:
            texts = await self.resolver.lookup(domain, "TXT")
        except (NoSuchDomain, NoData):
            return None
        except DnsError as exc:
            raise TempError(str(exc)) from exc
        # RFC 7208 4.5: records start with "v=spf1" followed by a space or the end.
        found = [t for t in texts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
        if len(found) > 1:
            raise PermError(f"{domain}: more than one SPF record")
        return found[0] if found else None

    async def check_host(self, domain: str, depth: int = 0) -> SpfResult:
        if depth > 20:
            raise PermError("include loop")
        if not valid_domain(domain):
            return "none"
        text = await self.record(domain)
        if text is None:
            return "none"
        return await self._evaluate(text, domain, depth)

    async def _evaluate(self, text: str, domain: str, depth: int) -> SpfResult:
        directives: list[tuple[SpfResult, str, str]] = []
        redirect: str | None = None
        for term in text.split()[1:]:
            m = re.match(r"^([A-Za-z][A-Za-z0-9\-_.]*)=(.*)$", term)
            if m:
                name, value = m.group(1).lower(), m.group(2)
                if name == "redirect":
                    if redirect is not None:
                        raise PermError("redirect given twice")  # RFC 7208 6
                    redirect = value
                continue  # RFC 7208 6: unknown modifiers are ignored (exp is not used)
            qualifier: SpfResult = "pass"
            if term[0] in _QUALIFIERS:
                qualifier, term = _QUALIFIERS[term[0]], term[1:]
            m2 = re.match(r"^([A-Za-z0-9]+)(.*)$", term)
            if not m2 or m2.group(1).lower() not in _MECHANISMS:
                raise PermError(f"unknown mechanism {term!r}")  # RFC 7208 5
            directives.append((qualifier, m2.group(1).lower(), m2.group(2)))
        for qualifier, mech, arg in directives:
            if await self._matches(mech, arg, domain, depth):
                return qualifier
        # RFC 7208 6.1: redirect applies only when no mechanism matched ("all" always does).
        if redirect is not None:
            self._count_term()
            target = self.expand(redirect, domain)
            result = await self.check_host(target, depth + 1)
            if result == "none":
                raise PermError(f"redirect target {target} has no SPF record")
            return result
        return "neutral"  # RFC 7208 4.7: no match -> neutral

    @staticmethod
    def _split_cidr(arg: str) -> tuple[str, int | None, int | None]:
        m = re.match(r"^(.*?)(?:/(\d+))?(?://(\d+))?$", arg)
        if not m:
            raise PermError(f"bad argument {arg!r}")
        v4 = int(m.group(2)) if m.group(2) else None
        v6 = int(m.group(3)) if m.group(3) else None
        if (v4 is not None and v4 > 32) or (v6 is not None and v6 > 128):
            raise PermError(f"bad prefix length in {arg!r}")
        return m.group(1), v4, v6

    def _in_net(self, addr: IpAddress, v4: int | None, v6: int | None) -> bool:
        if addr.version != self.ip.version:
            return False
        if addr.version == 4:
            bits = v4 if v4 is not None else 32
        else:
            bits = v6 if v6 is not None else 128
        net = ipaddress.ip_network(f"{addr}/{bits}", strict=False)
        return self.ip in net

    def _target(self, spec: str, domain: str) -> str:
        if not spec:
            return domain
        if not spec.startswith(":"):
            raise PermError(f"bad argument {spec!r}")
        return self.expand(spec[1:], domain)

    async def _matches(self, mech: str, arg: str, domain: str, depth: int) -> bool:
        if mech == "all":
            if arg:
                raise PermError("all takes no argument")
            return True
        if mech in ("ip4", "ip6"):
            if not arg.startswith(":"):
                raise PermError(f"{mech} needs an address")
            try:
                net = ipaddress.ip_network(arg[1:], strict=False)
            except ValueError:
                raise PermError(f"bad network {arg[1:]!r}") from None
            if (mech == "ip4") != (net.version == 4):
                raise PermError(f"{mech} with the wrong address family")
            return net.version == self.ip.version and self.ip in net
        if mech == "include":
            self._count_term()
            target = self._target(arg, domain)
            if target == domain and not arg:
                raise PermError("include needs a domain")
            result = await self.check_host(target, depth + 1)
            # RFC 7208 5.2: include maps temperror through and none to permerror.
            if result == "pass":
                return True
            if result == "temperror":
                raise TempError(f"include {target}")
            if result in ("permerror", "none"):
                raise PermError(f"include {target}: {result}")
            return False
        if mech == "exists":
            self._count_term()
            target = self._target(arg, domain)
            try:
                return bool(await self.resolver.lookup(target, "A"))
            except (NoSuchDomain, NoData):
                self.voids += 1
                if self.voids > VOID_LIMIT:
                    raise PermError("too many void DNS lookups") from None
                return False
            except DnsError as exc:
                raise TempError(str(exc)) from exc
        if mech == "a":
            self._count_term()
            spec, v4, v6 = self._split_cidr(arg)
            target = self._target(spec, domain)
            return any(self._in_net(a, v4, v6) for a in await self._addresses(target))
        if mech == "mx":
            self._count_term()
            spec, v4, v6 = self._split_cidr(arg)
            target = self._target(spec, domain)
            records = await self._query(target, "MX")
            if len(records) > MX_PTR_LIMIT:
                raise PermError("more than 10 MX records")
            for rec in records:
                host = rec.split()[-1]
                if any(self._in_net(a, v4, v6) for a in await self._addresses(host)):
                    return True
            return False
        # ptr (RFC 7208 5.5, discouraged but must work)
        self._count_term()
        target = self._target(arg, domain).lower()
        return any(
            name == target or name.endswith("." + target) for name in await self.validated_names()
        )

    async def validated_names(self) -> list[str]:
        names = await self._query(self.ip.reverse_pointer, "PTR")
        good: list[str] = []
        for name in names[:MX_PTR_LIMIT]:
            try:
                addrs = await self.resolver.lookup(name, "A" if self.ip.version == 4 else "AAAA")
            except DnsError:
                continue
            if any(_safe_ip(a) == self.ip for a in addrs):
                good.append(name.lower().rstrip("."))
        return good


def _safe_ip(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


async def check_host(
    resolver: Resolver,
    ip: str,
    domain: str,
    sender: str,
    helo: str,
    deadline: float = 20.0,
) -> tuple[SpfResult, str]:
    """RFC 7208 4: evaluate SPF for ``ip`` against ``domain``; (result, reason)."""
    try:
        address = _parse_ip(ip)
    except ValueError:
        return "permerror", f"bad client address {ip!r}"
    check = _Check(resolver, address, sender, helo)
    try:
        async with asyncio.timeout(deadline):
            return await check.check_host(domain.lower().rstrip(".")), ""
    except TimeoutError:
        return "temperror", "SPF evaluation timed out"
    except TempError as exc:
        return "temperror", str(exc)
    except PermError as exc:
        return "permerror", str(exc)


async def check_spf(
    resolver: Resolver, ip: str, mail_from: str, helo: str, deadline: float = 20.0
) -> SpfOutcome:
    """Check the MAIL FROM identity, or the HELO identity for the null sender (RFC 7208 2.4)."""
    helo = helo.strip().lower().rstrip(".")
    if mail_from:
        local, _, domain = mail_from.rpartition("@")
        domain = domain.lower()
        # RFC 7208 4.3: an empty local-part is replaced by "postmaster".
        sender = f"{local or 'postmaster'}@{domain}"
        scope: Literal["mailfrom", "helo"] = "mailfrom"
    else:
        # RFC 7208 2.4: the null sender is checked as postmaster@<HELO identity>.
        domain = helo
        sender = f"postmaster@{helo}"
        scope = "helo"
    if not domain or not valid_domain(domain):
        return SpfOutcome("none", domain, scope, "no valid domain")
    result, reason = await check_host(resolver, ip, domain, sender, helo, deadline)
    log.debug("spf=%s domain=%s ip=%s reason=%s", result, domain, ip, reason)
    return SpfOutcome(result, domain, scope, reason)
