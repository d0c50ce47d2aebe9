"""The one-time setup secret that unlocks the web wizard, and whether setup is done.

Below both the `pillarbox` command (``pillarbox setup-secret``, the dev banner) and the
web UI (the wizard's unlock step, the code printed when the web server starts): neither
imports the other for it. The secret is created 0600 under data_dir when first asked
for; once an enabled admin exists the box is set up, the code unlocks nothing and its
file is removed.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from pathlib import Path

from appliance import atomicfile, config
from appliance.accounts import Accounts

log = logging.getLogger(__name__)

SECRET_FILE = "setup-secret"  # noqa: S105 - a file name, not a secret
# No 0/O, 1/I/L: the secret is read off a screen and typed by hand.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_GROUPS, _GROUP_LEN = 5, 4  # 20 symbols ~ 99 bits


def secret_path(cfg: config.Config) -> Path:
    return cfg.data_dir / SECRET_FILE


def _new_secret() -> str:
    groups = ("".join(secrets.choice(_ALPHABET) for _ in range(_GROUP_LEN)) for _ in range(_GROUPS))
    return "-".join(groups)


def read_or_create_secret(cfg: config.Config) -> str:
    """The setup secret, created (mode 0600) when missing. Called by `pillarbox setup-secret`."""
    path = secret_path(cfg)
    try:
        text = path.read_text(encoding="ascii").strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = _new_secret()
    atomicfile.write_text(path, value + "\n", encoding="ascii", mode=0o600)
    log.info("setup=secret-created path=%s", path)
    return value


def box_is_set_up(cfg: config.Config) -> bool:
    """An enabled admin exists: the wizard is closed and no setup code is needed."""
    if not cfg.accounts_db.exists():  # not made here: the CLI may run as another user
        return False
    accounts = Accounts(cfg.accounts_db)
    try:
        return any(u.is_admin and not u.disabled for u in accounts.list_users())
    finally:
        accounts.close()


def console_secret(cfg: config.Config) -> str | None:
    """The setup code to show on the console, or None once the box is set up (and the
    file, if any, is removed). Used by the web server's start and `pillarbox setup-secret`."""
    if box_is_set_up(cfg):
        forget_secret(cfg)
        return None
    return read_or_create_secret(cfg)


def forget_secret(cfg: config.Config) -> None:
    """Setup is done: the code unlocks nothing any more and is not kept."""
    path = secret_path(cfg)
    if path.exists():
        path.unlink(missing_ok=True)
        log.info("setup=secret-removed path=%s", path)


def _canonical(text: str) -> str:
    return "".join(c for c in text.upper() if c.isalnum())


def secret_matches(cfg: config.Config, attempt: str) -> bool:
    expected = _canonical(read_or_create_secret(cfg))
    return hmac.compare_digest(expected.encode(), _canonical(attempt).encode())
