"""Which local folder each source folder goes to.

Order of decisions: an explicit ``--folder-map SRC=DST``; INBOX; a special-use
attribute from LIST (RFC 6154 2) or Gmail's XLIST; the usual names of providers that
send no attributes; else the same name. Special-use folders land on the local folder
with that attribute (Sent, Drafts, Trash, Junk, Archive). Gmail's virtual folders:
``\\All`` (All Mail) is copied last into Archive, de-duplicated against the label
folders or skipped; ``\\Flagged`` (Starred) and Important are skipped (their messages
arrive through their other labels with the \\Flagged flag).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.store.base import INBOX

if TYPE_CHECKING:
    from appliance.migrate.engine import PlannedFolder
    from appliance.migrate.imapsource import RemoteFolder

# last path component, lower case -> special use (providers without SPECIAL-USE)
NAME_HINTS: dict[str, str] = {
    "sent": "\\Sent",
    "sent items": "\\Sent",
    "sent messages": "\\Sent",
    "sent mail": "\\Sent",
    "drafts": "\\Drafts",
    "draft": "\\Drafts",
    "trash": "\\Trash",
    "deleted items": "\\Trash",
    "deleted messages": "\\Trash",
    "bin": "\\Trash",
    "junk": "\\Junk",
    "junk e-mail": "\\Junk",
    "junk email": "\\Junk",
    "spam": "\\Junk",
    "bulk mail": "\\Junk",
    "archive": "\\Archive",
    "archives": "\\Archive",
}
LOCAL_DEFAULT = {
    "\\Sent": "Sent",
    "\\Drafts": "Drafts",
    "\\Trash": "Trash",
    "\\Junk": "Junk",
    "\\Archive": "Archive",
}


def special_use_of(folder: RemoteFolder) -> str | None:
    attr = folder.special_use
    if attr is not None:
        return attr
    last = folder.name.rsplit("/", 1)[-1].lower()
    parent = folder.name.rsplit("/", 1)[0].lower() if "/" in folder.name else ""
    top_level = parent in ("", "[gmail]", "[google mail]", "inbox")
    return NAME_HINTS.get(last) if top_level else None


def plan_folders(
    remote: list[RemoteFolder],
    local_special: dict[str, str],
    folder_map: dict[str, str],
    *,
    gmail: bool,
    all_mail: str,
) -> list[tuple[RemoteFolder, PlannedFolder]]:
    from appliance.migrate.engine import PlannedFolder

    first: list[tuple[RemoteFolder, PlannedFolder]] = []
    last: list[tuple[RemoteFolder, PlannedFolder]] = []
    for f in remote:
        if not f.selectable:
            continue
        if f.name in folder_map:
            first.append((f, PlannedFolder(f.name, folder_map[f.name], "--folder-map")))
            continue
        if f.name == INBOX:
            first.insert(0, (f, PlannedFolder(f.name, INBOX, "INBOX")))
            continue
        use = special_use_of(f)
        if use == "\\All":
            if all_mail == "skip":
                first.append((f, PlannedFolder(f.name, None, "Gmail All Mail (skipped)")))
            else:
                dest = local_special.get("\\Archive", "Archive")
                last.append((f, PlannedFolder(f.name, dest, "Gmail All Mail (de-duplicated)")))
            continue
        if use == "\\Flagged" or (gmail and f.name.lower() == "[gmail]/important"):
            first.append((f, PlannedFolder(f.name, None, "virtual folder (skipped)")))
            continue
        if use in LOCAL_DEFAULT:
            dest = local_special.get(use, LOCAL_DEFAULT[use])
            first.append((f, PlannedFolder(f.name, dest, f"special-use {use}")))
            continue
        name = f.name
        if gmail and name.lower().startswith("[gmail]/"):
            name = name.split("/", 1)[1]
        first.append((f, PlannedFolder(f.name, name, "same name")))
    return first + last
