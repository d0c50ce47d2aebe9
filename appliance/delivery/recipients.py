"""Recipient resolution and the relay rule, decided once per RCPT TO.

The relay rule: an unauthenticated client may only reach domains served here
(RFC 5321 3.6.2, 7.1: no open relay). The decision uses the domain after the last "@"
alone; ``%``, ``!`` and quoted local parts are never interpreted as routing, address
literals are never local, and a quoted local part can only match nothing (accounts
refuse quotes), so every relay trick ends in 550.

Everything here is blocking (SQLite, store usage): call from ``asyncio.to_thread``.
Quota at RCPT is advisory (refuse early what cannot fit, RFC 1870 SIZE): the store takes
the decision that counts when the message is stored, with the same rule. The usage
read here is the message's one read per user (``MessageQuota``, kept in the SMTP
transaction and reused at the end of DATA).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from appliance.accounts import AccountError, Accounts, normalize_address
from appliance.delivery.errors import DeliveryFailed, mailbox_full, relay_denied, unknown_user
from appliance.delivery.srs import Srs, SrsError, is_srs
from appliance.store.base import MailStore
from appliance.store.quota import MessageQuota

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    """One accepted RCPT TO and where it leads."""

    address: str  # as the client sent it
    local: tuple[str, ...] = ()  # local users (normalised addresses)
    remote: tuple[str, ...] = ()  # addresses handed to the outbound queue


def quota_of(accounts: Accounts, user: str, default_quota: int) -> int:
    """The user's quota in bytes (0 = unlimited): their own, else the configured default."""
    record = accounts.get_user(user)
    if record is not None and record.quota_bytes > 0:
        return record.quota_bytes
    return default_quota


def message_quota(accounts: Accounts, store: MailStore, default_quota: int) -> MessageQuota:
    """The quota checks of one message: each user's limit and usage read once."""
    return MessageQuota(store, lambda user: quota_of(accounts, user, default_quota))


class Domains(Protocol):
    def is_local_domain(self, name: str) -> bool: ...

    def list_domains(self) -> list[str]: ...


def postmaster(accounts: Domains, hostname: str) -> str | None:
    """The address ``<Postmaster>`` (no domain) stands for: postmaster@ the first local
    domain among the host name and its parents (RFC 5321 4.1.1.3)."""
    labels = hostname.split(".")
    for i in range(len(labels) - 1):
        domain = ".".join(labels[i:])
        if accounts.is_local_domain(domain):
            return f"postmaster@{domain}"
    domains = accounts.list_domains()
    return f"postmaster@{domains[0]}" if domains else None


class Resolver:
    def __init__(
        self,
        accounts: Accounts,
        store: MailStore,
        default_quota: int,
        srs: Srs | None = None,
        quota: MessageQuota | None = None,
    ) -> None:
        self.accounts = accounts
        self.store = store
        self.default_quota = default_quota
        self.srs = srs  # reverses SRS0 addresses of mail this box forwarded (bounces)
        # the message's quota checks (one usage read per user), shared by its RCPTs
        self.quota = quota or message_quota(accounts, store, default_quota)

    def check(self, local: str, domain: str, authenticated: bool, size_hint: int = 0) -> Recipient:
        """Resolve ``local@domain`` for RCPT TO; raise DeliveryFailed with the reply."""
        address = f"{local}@{domain}"
        literal = domain.startswith("[")
        ours = not literal and self.accounts.is_local_domain(domain)
        if not ours:
            if not authenticated:
                log.info("rcpt=relay-denied to=%s", address)
                raise relay_denied()  # RFC 5321 7.1: never relay for unauthenticated clients
            if literal or local.startswith('"'):
                # Authenticated clients may send anywhere, but not to hand-routed paths.
                raise DeliveryFailed(
                    550,
                    "5.1.2",
                    "Address literals and quoted local parts are not accepted for outbound mail",
                )
            return Recipient(address, remote=(address,))
        if self.srs is not None and is_srs(local):
            return self._srs_return(local, address)
        if local.startswith('"') or any(c in local for c in "%!@"):
            log.info("rcpt=routing-syntax-refused to=%s", address)
            raise unknown_user()  # no %-hack, bang path or quoted routing into local domains
        try:
            normalize_address(address)
        except AccountError:
            raise unknown_user() from None
        resolution = self.accounts.resolve(address)
        if not resolution.exists:
            log.info("rcpt=unknown to=%s", address)
            raise unknown_user()
        if resolution.local and not resolution.remote:
            full = [u for u in resolution.local if self.over_quota(u, size_hint)]
            if len(full) == len(resolution.local):
                log.info("rcpt=over-quota to=%s users=%s", address, ",".join(full))
                raise mailbox_full()
        return Recipient(address, resolution.local, resolution.remote)

    def _srs_return(self, local: str, address: str) -> Recipient:
        """A reply or bounce to the SRS0 address of a forward: back to the original sender."""
        assert self.srs is not None
        try:
            original = self.srs.reverse(local)
        except SrsError as exc:
            log.info("rcpt=srs-refused to=%s reason=%s", address, exc)
            raise DeliveryFailed(550, "5.7.1", "Invalid or expired forwarding address") from None
        domain = original.rpartition("@")[2]
        if not self.accounts.is_local_domain(domain):
            log.info("rcpt=srs-reversed to=%s original=%s", address, original)
            return Recipient(address, remote=(original,))
        resolution = self.accounts.resolve(original)
        if not resolution.exists:
            raise unknown_user()
        return Recipient(address, resolution.local, resolution.remote)

    def over_quota(self, user: str, size: int) -> bool:
        # Usage unknown (no mailbox yet, disk trouble): the store decides at DATA.
        return not self.quota.fits(user, max(size, 1))

    def sender_allowed(self, user: str, sender: str) -> bool:
        """Submission: MAIL FROM must be the user or one of the addresses leading to them."""
        try:
            addr = normalize_address(sender)
        except AccountError:
            return False
        owned = self.accounts.addresses_of(user)
        local, _, domain = addr.rpartition("@")
        base = f"{local.split('+', 1)[0]}@{domain}"  # user+tag@ is the user's too
        return addr in owned or base in owned
