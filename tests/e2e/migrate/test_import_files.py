"""`pillarbox import mbox|maildir` and `pillarbox export`: flags, dates, folders, a broken
mbox, and the export -> import round trip (byte-identical per message)."""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from appliance.accounts import Accounts
from appliance.store.base import INBOX
from tests.e2e.migrate.migrate_env import PASSWORD, USER, Box, new_box, stored_messages
from tests.harness import REPO, pillarbox

CORPUS = sorted((REPO / "tests" / "corpus").glob("*.eml"))
BOB = "bob@example.org"


def msg(i: int, extra: str = "") -> bytes:
    return (
        f"From: a{i}@old.example\r\nSubject: {i}\r\nMessage-ID: <f{i}@old.example>\r\n"
        f"{extra}\r\nbody {i}\r\n"
    ).encode()


def cli(box: Box, *args: str) -> tuple[int, str, str]:
    r = pillarbox(*args, "-c", str(box.path), check=False)
    return r.returncode, r.stdout, r.stderr


def test_mbox_with_a_broken_from_line_keeps_what_came_before(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    parts = [
        b"From a@b Mon Jan  1 10:00:00 2024\n" + msg(i).replace(b"\r\n", b"\n") + b"\n"
        for i in range(5)
    ]
    broken = b"".join(parts[:3]) + b"From nobody knows when\n\n" + b"".join(parts[3:])
    path = tmp_path / "old.mbox"
    path.write_bytes(broken)
    code, out, err = cli(box, "import", "mbox", str(path), "--to", f"{USER}/Old")
    assert code == 1
    assert "line 22: broken 'From ' line 'From nobody knows when'" in err
    assert "the 2 messages before it were copied and stay" in err
    assert sorted(stored_messages(box)) == ["<f0@old.example>", "<f1@old.example>"]
    # fixed by hand (the line was meant as text): the re-run adds the rest, nothing twice
    path.write_bytes(broken.replace(b"\nFrom nobody", b"\n>From nobody"))
    code, out, err = cli(box, "import", "mbox", str(path), "--to", f"{USER}/Old")
    assert code == 0, err
    assert "skipped 2 duplicates" in out
    got = stored_messages(box)
    assert sorted(got) == [f"<f{i}@old.example>" for i in range(5)]
    assert all(len(v) == 1 and v[0].folder == "Old" for v in got.values())
    assert got["<f2@old.example>"][0].data.endswith(b"body 2\r\n\r\nFrom nobody knows when\r\n")


def test_old_maildir_with_flags_keywords_and_subfolders(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    old = tmp_path / "Maildir"
    layout = {
        "": [("1.a.host:2,S", 1), ("2.b.host:2,FRa", 2), ("3.c.host", 3)],
        ".Sent": [("4.d.host:2,S", 4)],
        ".Work.Projects": [("5.e.host:2,DTb", 5)],
        ".Caf&AOk-": [("6.f.host:2,P", 6)],
    }
    for folder, files in layout.items():
        d = old / folder
        for sub in ("cur", "new", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "dovecot-keywords").write_text("0 $Work\n1 Later\n")
        for name, i in files:
            path = d / ("new" if ":2," not in name else "cur") / name
            path.write_bytes(msg(i))
            os.utime(path, (1_600_000_000 + i, 1_600_000_000 + i))
    code, out, err = cli(box, "import", "maildir", str(old), "--to", USER)
    assert code == 0, err
    assert "copied 6" in out
    got = {mid: v[0] for mid, v in stored_messages(box).items()}
    want = {
        1: (INBOX, {"\\Seen"}),
        2: (INBOX, {"\\Flagged", "\\Answered", "$Work"}),
        3: (INBOX, set()),
        4: ("Sent", {"\\Seen"}),
        5: ("Work/Projects", {"\\Draft", "\\Deleted", "Later"}),
        6: ("Café", {"$Forwarded"}),
    }
    for i, (folder, flags) in want.items():
        s = got[f"<f{i}@old.example>"]
        assert (s.folder, s.flags, s.date, s.data) == (folder, flags, 1_600_000_000 + i, msg(i))
    # into a folder of its own
    code, out, err = cli(box, "import", "maildir", str(old), "--to", f"{USER}/Old mail")
    assert code == 0, err
    folders = {s.folder for v in stored_messages(box).values() for s in v}
    assert {"Old mail", "Old mail/Sent", "Old mail/Work/Projects"} <= folders


def test_takeout_mbox_labels_become_folders(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    rows = [
        (1, "Inbox,Opened"),
        (2, "Sent"),
        (3, "Work,Inbox,Unread"),
        (4, "Archived,Opened"),
        (5, "Spam"),
    ]
    text = b"".join(
        b"From 1@xxx Mon Jan 01 10:00:00 +0000 2024\n"
        + msg(i, f"X-Gmail-Labels: {labels}\r\n").replace(b"\r\n", b"\n")
        + b"\n"
        for i, labels in rows
    )
    path = tmp_path / "All mail Including Spam and Trash.mbox"
    path.write_bytes(text)
    code, _out, err = cli(box, "import", "mbox", str(path), "--to", USER, "--gmail-labels")
    assert code == 0, err
    got = stored_messages(box)
    where = {mid: sorted(s.folder for s in v) for mid, v in got.items()}
    assert where == {
        "<f1@old.example>": [INBOX],
        "<f2@old.example>": ["Sent"],
        "<f3@old.example>": [INBOX, "Work"],
        "<f4@old.example>": ["Archive"],
        "<f5@old.example>": ["Junk"],
    }
    assert got["<f3@old.example>"][0].flags == frozenset()  # Unread
    assert got["<f1@old.example>"][0].flags == {"\\Seen"}


def _fill_for_export(
    box: Box, corpus: list[Path]
) -> dict[str, list[tuple[bytes, frozenset[str], int]]]:
    store = box.store()
    store.ensure_user(USER)
    store.create_mailbox(USER, "Work")
    store.create_mailbox(USER, "Work/2024")
    flagsets = [
        set(),
        {"\\Seen"},
        {"\\Seen", "\\Flagged", "$Work"},
        {"\\Answered", "Later"},
        {"\\Draft"},
    ]
    placed: dict[str, list[tuple[bytes, frozenset[str], int]]] = {}
    for i, path in enumerate(corpus):
        box_name = (INBOX, "Work", "Work/2024", "Sent")[i % 4]
        flags = frozenset(flagsets[i % len(flagsets)])
        date = 1_650_000_000 + i * 3600
        store.append(USER, box_name, path, flags, date)
        placed.setdefault(box_name, []).append((path.read_bytes(), flags, date))
    return placed


def _by_folder(box: Box, user: str) -> dict[str, list[tuple[bytes, frozenset[str], int]]]:
    store = box.store()
    out: dict[str, list[tuple[bytes, frozenset[str], int]]] = {}
    for mb in store.list_mailboxes(user):
        for info in store.snapshot(user, mb.name).messages:
            with store.open_message(user, mb.name, info.uid) as fh:
                out.setdefault(mb.name, []).append((fh.read(), info.flags, int(info.internal_date)))
    return {k: sorted(v) for k, v in out.items() if v}


def test_export_maildir_then_import_is_byte_identical(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    Accounts(box.cfg.accounts_db).add_user(BOB, PASSWORD)
    placed = _fill_for_export(box, CORPUS)
    out = tmp_path / "export"
    code, stdout, err = cli(box, "export", USER, "--format", "maildir", str(out))
    assert code == 0, err
    assert f"exported {len(CORPUS)} messages" in stdout
    code, stdout, err = cli(box, "import", "maildir", str(out), "--to", BOB)
    assert code == 0, err
    assert _by_folder(box, BOB) == {k: sorted(v) for k, v in placed.items()}


def test_export_mbox_then_import_is_byte_identical(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    Accounts(box.cfg.accounts_db).add_user(BOB, PASSWORD)
    # mbox keeps text lines: messages that end in CRLF and have no bare CR or LF
    lines_ok = [
        p
        for p in CORPUS
        if p.read_bytes().endswith(b"\r\n")
        and not re.search(rb"(?<!\r)\n|\r(?!\n)", p.read_bytes())
    ]
    assert len(lines_ok) >= 15
    placed = _fill_for_export(box, lines_ok)
    out = tmp_path / "export"
    code, _, err = cli(box, "export", USER, "--format", "mbox", str(out))
    assert code == 0, err
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.mbox"))
    assert files == [
        "Archive.mbox",
        "Drafts.mbox",
        "INBOX.mbox",
        "Junk.mbox",
        "Sent.mbox",
        "Trash.mbox",
        "Work.mbox",
        "Work/2024.mbox",
    ]
    for name, folder in (
        ("INBOX.mbox", INBOX),
        ("Work.mbox", "Work"),
        ("Work/2024.mbox", "Work/2024"),
        ("Sent.mbox", "Sent"),
    ):
        target = BOB if folder == INBOX else f"{BOB}/{folder}"
        code, _stdout, err = cli(box, "import", "mbox", str(out / name), "--to", target)
        assert code == 0, err
    got = _by_folder(box, BOB)
    for folder, items in placed.items():
        assert sorted(d for d, _f, _t in got[folder]) == sorted(d for d, _f, _t in items)
        assert sorted(t for _d, _f, t in got[folder]) == sorted(t for _d, _f, t in items)


def test_export_refuses_unknown_user_and_non_empty_directory(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    code, _, err = cli(box, "export", "nobody@example.org", str(tmp_path / "x"))
    assert code == 1 and "no local user 'nobody@example.org'" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    code, _, err = cli(box, "export", USER, str(tmp_path / "full"))
    assert code == 1 and "is not empty" in err


def test_thunderbird_local_folders_directory(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    tb = tmp_path / "Local Folders"
    (tb / "Work.sbd").mkdir(parents=True)

    def mbox_of(*ids: int) -> bytes:
        return b"".join(
            b"From - Mon Jan  1 10:00:00 2024\n"
            + msg(i, "X-Mozilla-Status: 0001\r\n").replace(b"\r\n", b"\n")
            + b"\n"
            for i in ids
        )

    (tb / "Inbox").write_bytes(mbox_of(1, 2))
    (tb / "Inbox.msf").write_text("// mork index")
    (tb / "Sent").write_bytes(mbox_of(3))
    (tb / "Trash").write_bytes(b"")
    (tb / "Work").write_bytes(mbox_of(4))
    (tb / "Work.sbd" / "Projects").write_bytes(mbox_of(5))
    (tb / "popstate.dat").write_text("# POP3 State File")
    code, _out, err = cli(box, "import", "mbox", str(tb), "--to", USER)
    assert code == 0, err
    got = {mid: (v[0].folder, v[0].flags) for mid, v in stored_messages(box).items()}
    assert got == {
        "<f1@old.example>": (INBOX, {"\\Seen"}),
        "<f2@old.example>": (INBOX, {"\\Seen"}),
        "<f3@old.example>": ("Sent", {"\\Seen"}),
        "<f4@old.example>": ("Work", {"\\Seen"}),
        "<f5@old.example>": ("Work/Projects", {"\\Seen"}),
    }
    (tb / "Work.sbd" / "Projects").write_bytes(mbox_of(5) + b"\nFrom a broken line\n")
    code, _out, err = cli(box, "import", "mbox", str(tb), "--to", USER)
    assert code == 1
    assert f"{tb / 'Work.sbd' / 'Projects'} line 10: broken 'From ' line" in err


def test_one_run_per_import_across_processes(tmp_path: Path) -> None:
    box = new_box(tmp_path)
    path = tmp_path / "one.mbox"
    path.write_bytes(b"From a@b Mon Jan  1 10:00:00 2024\n" + msg(1).replace(b"\r\n", b"\n"))
    from appliance.migrate import runner, state

    params = {"kind": "mbox", "user": USER, "path": str(path), "folder": ""}
    jid = runner.planned_job_id(params, USER)
    lock = state.state_dir(box.cfg.data_dir) / f"{jid}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # another process is running this import
        code, _, err = cli(box, "import", "mbox", str(path), "--to", USER)
        assert code == 1 and "this import is running already" in err
    code, out, err = cli(box, "import", "mbox", str(path), "--to", USER)
    assert code == 0 and "copied 1" in out, err
