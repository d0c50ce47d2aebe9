"""ctl commands for the web UI's Sieve editor (the daemon owns the scripts).

sieve.get    {"user"}            -> {"script": str | None}
sieve.check  {"script"}          -> {"ok": true} | {"ok": false, "error", "line", "column"}
sieve.save   {"user", "script"}  -> same as sieve.check; saved only when ok
sieve.delete {"user"}            -> {"deleted": bool}
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from appliance.filters.sieve_parse import SieveSyntaxError
from appliance.filters.sieve_store import SieveStore, validate

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class SieveCommandError(ValueError):
    """Bad arguments to a sieve.* command."""


def _arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise SieveCommandError(f"{name}: a string is required")
    return value


def _problem(exc: SieveSyntaxError) -> dict[str, Any]:
    return {"ok": False, "error": exc.message, "line": exc.line, "column": exc.column}


def sieve_handlers(store: SieveStore) -> dict[str, Handler]:
    async def get(args: dict[str, Any]) -> Any:
        return {"script": await asyncio.to_thread(store.get_script, _arg(args, "user"))}

    async def check(args: dict[str, Any]) -> Any:
        try:
            await asyncio.to_thread(validate, _arg(args, "script"))
        except SieveSyntaxError as exc:
            return _problem(exc)
        return {"ok": True}

    async def save(args: dict[str, Any]) -> Any:
        user, script = _arg(args, "user"), _arg(args, "script")
        try:
            await asyncio.to_thread(store.save_script, user, script)
        except SieveSyntaxError as exc:
            return _problem(exc)
        return {"ok": True}

    async def delete(args: dict[str, Any]) -> Any:
        return {"deleted": await asyncio.to_thread(store.delete_script, _arg(args, "user"))}

    def guarded(handler: Handler) -> Handler:
        async def run(args: dict[str, Any]) -> Any:
            try:
                return await handler(args)
            except ValueError as exc:  # bad arguments, or a user name that is no address
                return {"ok": False, "error": str(exc)}

        return run

    return {
        "sieve.get": guarded(get),
        "sieve.check": guarded(check),
        "sieve.save": guarded(save),
        "sieve.delete": guarded(delete),
    }
