"""Users, aliases, domains and app passwords; hashing and login throttling."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from appliance.accounts.db import (
    MAX_APP_PASSWORDS,
    AccountError,
    Accounts,
    Alias,
    AlreadyExists,
    AppPassword,
    NotFound,
    ReadOnly,
    Resolution,
    User,
    normalize_address,
    normalize_domain,
)
from appliance.accounts.hashing import WeakPassword
from appliance.accounts.throttle import LoginThrottle

log = logging.getLogger(__name__)

__all__ = [
    "MAX_APP_PASSWORDS",
    "AccountError",
    "Accounts",
    "Alias",
    "AlreadyExists",
    "AppPassword",
    "AuthResult",
    "Authenticator",
    "LoginThrottle",
    "NotFound",
    "ReadOnly",
    "Resolution",
    "User",
    "WeakPassword",
    "normalize_address",
    "normalize_domain",
]


@dataclass(frozen=True)
class AuthResult:
    user: User | None
    retry_after: float = 0.0  # > 0: refused by the throttle without checking the password

    @property
    def ok(self) -> bool:
        return self.user is not None


class Authenticator:
    """Async password check shared by SMTP AUTH, IMAP and POP3.

    The throttle is keyed on the canonical account id (every spelling of a login is one
    account) and the client IP; it refuses early during back-off. Past the per-account
    ceiling every attempt waits ``throttle.slowdown()`` (bounded) before the check, from
    any address. Hashing runs in a worker thread.
    """

    def __init__(self, accounts: Accounts, throttle: LoginThrottle | None = None) -> None:
        self.accounts = accounts
        self.throttle = throttle or LoginThrottle()

    async def authenticate(self, login: str, password: str, ip: str) -> AuthResult:
        account = self.accounts.canonical_login(login)
        wait = self.throttle.retry_after(account, ip)
        if wait > 0:
            log.info("auth=throttled user=%s ip=%s retry_after=%.0f", account, ip, wait)
            return AuthResult(None, wait)
        slow = self.throttle.slowdown(account)
        if slow > 0:
            log.info("auth=slowed user=%s ip=%s delay=%.1f", account, ip, slow)
            await asyncio.sleep(slow)
        user = await asyncio.to_thread(self.accounts.authenticate, login, password)
        if user is None:
            self.throttle.failure(account, ip)
            log.info("auth=failed user=%s ip=%s", account, ip)
            return AuthResult(None)
        self.throttle.success(account, ip)
        log.info("auth=ok user=%s ip=%s", user.email, ip)
        return AuthResult(user)
