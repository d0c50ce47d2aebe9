"""Change pillarbox.toml from the web UI, keeping the admin's comments and layout.

Edits go through tomlkit (round-trip) and are written by :func:`appliance.config.save`,
which validates the whole file first and replaces it atomically; an edit that would make
the config invalid raises ConfigError and leaves the file alone. After a save the daemon
is asked to reload; if it is not running, it reads the new file on its next start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from appliance import atomicfile, config
from appliance.ctl.protocol import CtlError
from webui.context import WebContext

log = logging.getLogger(__name__)


def update(path: Path, top: Mapping[str, Any] | None = None, **tables: Mapping[str, Any]) -> None:
    """Set top-level keys and keys inside tables (created when missing), then save."""
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    for key, value in (top or {}).items():
        doc[key] = value
    for name, values in tables.items():
        table = doc.get(name)
        if not isinstance(table, Table):
            table = tomlkit.table()
            doc[name] = table
        for key, value in values.items():
            table[key] = value
    config.save(path, tomlkit.dumps(doc))


def replace_keys(path: Path, name: str, values: Mapping[str, Any], drop: set[str]) -> None:
    """Set ``values`` in table ``name`` and remove the keys of ``drop`` not among them (a
    switch of backup kind leaves no settings of the old kind behind), then save."""
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    table = doc.get(name)
    if not isinstance(table, Table):
        table = tomlkit.table()
        doc[name] = table
    for key in drop - set(values):
        if key in table:
            del table[key]
    for key, value in values.items():
        table[key] = value
    config.save(path, tomlkit.dumps(doc))


def set_smarthost(path: Path, entry: Mapping[str, Any] | None) -> None:
    """Replace all smarthosts with ``entry`` (one relay), or remove them when None."""
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    if "smarthost" in doc:
        del doc["smarthost"]
    if entry is not None:
        table = tomlkit.table()
        for key, value in entry.items():
            table[key] = value
        doc["smarthost"] = table
    config.save(path, tomlkit.dumps(doc))


def write_private(path: Path, text: str) -> None:
    """A 0600 file (the smarthost password), replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomicfile.write_text(path, text, mode=0o600)


def reload_daemon(ctx: WebContext) -> str:
    """Ask the daemon to re-read the config; returns a sentence for the person."""
    try:
        ctx.ctl().call("reload")
    except CtlError as exc:
        log.info("web=reload-skipped reason=%s", exc)
        return "Saved. The mail service is not running; it will use this when it starts."
    return "Saved and applied."
