"""ctl commands for a user's own mailbox page in the web UI (the daemon owns the mail).

mailbox.usage {"user"}            -> {"folders": [{"name", "special_use", "messages",
                                      "bytes"}], "messages", "bytes", "quota"}
mailbox.empty {"user", "mailbox"} -> {"deleted": n}; only the \\Junk and \\Trash folders

The web UI passes the signed-in user; the daemon refuses names that are no account.
Emptying goes through the store, so open IMAP sessions see EXPUNGE and the index and
the quota's usage stay right.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from appliance.runtime import CommandError
from appliance.store.base import MailboxNotFound, MailStore

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
QuotaOf = Callable[[str], int | None]  # the user's quota in bytes (0 = none); None: no user
EMPTYABLE = ("\\Junk", "\\Trash")


def _arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise CommandError(f"{name}: a string is required")
    return value


def mailbox_handlers(store: MailStore, quota_of: QuotaOf) -> dict[str, Handler]:
    def account(args: dict[str, Any]) -> tuple[str, int]:
        user = _arg(args, "user").strip().lower()
        quota = quota_of(user)
        if quota is None:
            raise CommandError(f"no mailbox {user}")
        return user, quota

    def usage(args: dict[str, Any]) -> dict[str, Any]:
        user, quota = account(args)
        store.ensure_user(user)
        folders = []
        for info in store.list_mailboxes(user):
            if not info.selectable:
                continue
            try:
                status = store.status(user, info.name)
            except MailboxNotFound:
                continue  # deleted by an IMAP client meanwhile
            folders.append(
                {
                    "name": info.name,
                    "special_use": info.special_use or "",
                    "messages": status.messages,
                    "bytes": status.size,
                }
            )
        total = store.usage(user)
        return {
            "folders": folders,
            "messages": total.messages,
            "bytes": total.bytes,
            "quota": quota,
        }

    def empty(args: dict[str, Any]) -> dict[str, Any]:
        user, _ = account(args)
        name = _arg(args, "mailbox")
        kinds = {m.name: m.special_use for m in store.list_mailboxes(user)}
        if kinds.get(name) not in EMPTYABLE:
            raise CommandError(f"{name} is not a Junk or Trash folder")
        uids = [m.uid for m in store.snapshot(user, name).messages]
        deleted = store.delete_messages(user, name, uids) if uids else []
        log.info("mailbox=emptied user=%s mailbox=%s messages=%s", user, name, len(deleted))
        return {"deleted": len(deleted)}

    def threaded(work: Callable[[dict[str, Any]], dict[str, Any]]) -> Handler:
        async def run(args: dict[str, Any]) -> Any:
            return await asyncio.to_thread(work, args)  # disk and SQLite: off the loop

        return run

    return {"mailbox.usage": threaded(usage), "mailbox.empty": threaded(empty)}
