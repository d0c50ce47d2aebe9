"""Users, aliases, domains and app passwords; hashing and login throttling."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from appliance.accounts.db import (
    AccountError,
    Accounts,
    Alias,
    AlreadyExists,
    AppPassword,
    NotFound,
    Resolution,
    User,
    normalize_address,
    normalize_domain,
)
from appliance.accounts.hashing import WeakPassword
from appliance.accounts.throttle import LoginThrottle

log = logging.getLogger(__name__)

__all__ = [
    "AccountError",
    "Accounts",
    "Alias",
    "AlreadyExists",
    "AppPassword",
    "AuthResult",
    "Authenticator",
    "LoginThrottle",
    "NotFound",
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
    """Async password check shared by SMTP AUTH, IMAP, POP3 and the web UI.

    Hashing runs in a worker thread; the throttle refuses early during back-off.
    """

    def __init__(self, accounts: Accounts, throttle: LoginThrottle | None = None) -> None:
        self.accounts = accounts
        self.throttle = throttle or LoginThrottle()

    async def authenticate(self, login: str, password: str, ip: str) -> AuthResult:
        wait = self.throttle.retry_after(login, ip)
        if wait > 0:
            log.info("auth=throttled user=%s ip=%s retry_after=%.0f", login, ip, wait)
            return AuthResult(None, wait)
        user = await asyncio.to_thread(self.accounts.authenticate, login, password)
        if user is None:
            self.throttle.failure(login, ip)
            log.info("auth=failed user=%s ip=%s", login, ip)
            return AuthResult(None)
        self.throttle.success(login, ip)
        log.info("auth=ok user=%s ip=%s", user.email, ip)
        return AuthResult(user)
