"""Where mail for a destination domain goes: a smarthost, or the domain's MX hosts
filtered and hardened by its MTA-STS policy."""

from __future__ import annotations

import ipaddress
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Smarthost
from appliance.dns import DnsError, NoData, Resolver, addresses
from appliance.queue.mtasts import MtaSts, Policy
from appliance.queue.mx import NullMx, mx_hosts
from appliance.queue.smtpclient import Target

log = logging.getLogger(__name__)

MAX_ADDRESSES_PER_HOST = 2


class RouteError(Exception):
    """No host to try. ``status`` is the RFC 3463 code used for the DSN / log."""

    def __init__(self, text: str, status: str, permanent: bool) -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.permanent = permanent


@dataclass(frozen=True)
class Route:
    key: str  # the per-destination concurrency key: the domain or "smarthost:<host>"
    targets: tuple[Target, ...]
    policy: Policy | None = None  # MTA-STS policy in force, for logging


def pick_smarthost(smarthosts: Sequence[Smarthost], domain: str) -> Smarthost | None:
    """A smarthost listing ``domain`` wins over one relaying everything."""
    for sh in smarthosts:
        if domain in sh.domains:
            return sh
    for sh in smarthosts:
        if not sh.domains:
            return sh
    return None


def _read_password(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise RouteError(f"smarthost password file: {exc.strerror}", "4.3.5", False) from None


def smarthost_target(sh: Smarthost) -> Target:
    """Blocking (reads the password file)."""
    if sh.username and sh.tls == "none":
        # Never send credentials in clear text: a config error, kept as a temporary failure
        # so the mail waits until the administrator fixes it.
        raise RouteError("smarthost needs TLS to authenticate (tls = 'none')", "4.7.0", False)
    tls = {"tls": "implicit", "starttls": "verified", "none": "none"}[sh.tls]
    return Target(
        name=sh.host,
        address=sh.host,
        port=sh.port,
        tls=tls,  # type: ignore[arg-type]
        username=sh.username,
        password=_read_password(sh.password_file) if sh.username else "",
    )


class Router:
    def __init__(
        self,
        resolver: Resolver,
        mtasts: MtaSts | None,
        rng: random.Random,
        port_for: Callable[[str], int] = lambda host: 25,
    ) -> None:
        self.resolver = resolver
        self.mtasts = mtasts
        self.rng = rng
        self.port_for = port_for

    def literal_route(self, domain: str) -> Route:
        """RFC 5321 4.1.3 / 5.1: an address literal is delivered to that address."""
        literal = domain[1:-1]
        if literal.lower().startswith("ipv6:"):
            literal = literal[5:]
        try:
            ip = str(ipaddress.ip_address(literal))
        except ValueError:
            raise RouteError(f"{domain} is not an address literal", "5.1.2", True) from None
        return Route(domain, (Target(name=ip, address=ip, port=self.port_for(ip)),))

    async def mx_route(self, domain: str, log_id: str) -> Route:
        if domain.startswith("[") and domain.endswith("]"):
            return self.literal_route(domain)
        try:
            hosts = await mx_hosts(self.resolver, domain, self.rng)
        except DnsError as exc:
            if exc.temporary:
                raise RouteError(f"DNS lookup for {domain} failed", "4.4.3", False) from exc
            # RFC 7505 4.2: null MX -> 5.1.10; NXDOMAIN -> 5.1.2 bad destination.
            status = "5.1.10" if isinstance(exc, NullMx) else "5.1.2"
            raise RouteError(str(exc), status, True) from exc
        policy = await self.mtasts.policy(domain, log_id) if self.mtasts else None
        targets: list[Target] = []
        temp_dns = False
        for mx in hosts:
            if policy is not None and not policy.matches(mx.name):
                log.warning(
                    "queue_id=%s domain=%s mx=%s event=mta-sts-mx-mismatch mode=%s",
                    log_id,
                    domain,
                    mx.name,
                    policy.mode,
                )
                if policy.mode == "enforce":
                    continue  # RFC 8461 4.1: enforce -> never deliver to an unlisted MX
            try:
                found = await addresses(self.resolver, mx.name)
            except NoData:
                continue
            except DnsError:
                temp_dns = True
                continue
            # RFC 8461 5: enforce -> the TLS session must be verified.
            tls = "verified" if policy is not None and policy.mode == "enforce" else "opportunistic"
            for address in found[:MAX_ADDRESSES_PER_HOST]:
                targets.append(
                    Target(
                        name=mx.name,
                        address=address,
                        port=self.port_for(mx.name),
                        tls=tls,  # type: ignore[arg-type]
                    )
                )
        if not targets:
            if policy is not None and policy.mode == "enforce":
                raise RouteError(f"no MX of {domain} matches its MTA-STS policy", "4.7.5", False)
            if temp_dns or not hosts[0].implicit:
                raise RouteError(f"no address for the mail hosts of {domain}", "4.4.4", False)
            raise RouteError(f"{domain} has no mail host", "5.1.2", True)
        return Route(domain, tuple(targets), policy)
