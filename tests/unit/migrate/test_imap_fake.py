"""The IMAP importer against a scripted server (real loopback socket): Gmail's labels
and All Mail, XLIST, and the pauses after NO [LIMIT] / BYE [UNAVAILABLE]."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.accounts import Accounts
from appliance.migrate import runner
from appliance.migrate import state as st
from tests.e2e.migrate.migrate_env import USER, Box, new_box, stored_messages
from tests.unit.migrate.fake_imap import Failure, FakeImap, Folder, Msg


def mail(i: int) -> bytes:
    return f"Message-ID: <g{i}@gmail.example>\r\nSubject: {i}\r\n\r\nbody {i}\r\n".encode()


def gmail_folders() -> dict[str, Folder]:
    m = {i: mail(i) for i in range(1, 6)}
    return {
        "INBOX": Folder(
            "\\HasNoChildren", [Msg(1, m[1], "\\Seen", gm=101), Msg(2, m[2], "", gm=102)]
        ),
        "[Gmail]": Folder("\\Noselect \\HasChildren"),
        "[Gmail]/Sent Mail": Folder("\\HasNoChildren \\Sent", [Msg(1, m[3], "\\Seen", gm=103)]),
        "[Gmail]/Starred": Folder("\\HasNoChildren \\Flagged", [Msg(1, m[2], "\\Flagged", gm=102)]),
        "Work": Folder("\\HasNoChildren", [Msg(4, m[1], "\\Seen", gm=101)]),
        "[Gmail]/All Mail": Folder(
            "\\HasNoChildren \\All",
            [
                Msg(u, m[i], "\\Seen", gm=100 + i)
                for u, i in ((1, 1), (2, 2), (3, 3), (4, 4), (5, 5))
            ],
        ),
    }


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return new_box(tmp_path)


def run(box: Box, server: FakeImap, sleeps: list[float] | None = None, **extra: Any) -> st.JobState:
    params = {
        "kind": "imap",
        "user": USER,
        "host": "127.0.0.1",
        "port": server.port,
        "security": "plain",
        "login": "me@gmail.example",
        "pause": 0.5,
        **extra,
    }
    record = sleeps if sleeps is not None else []
    return runner.run(
        box.cfg, Accounts(box.cfg.accounts_db), box.store(), params, "pw", sleep=record.append
    )


@pytest.fixture
def gmail() -> Iterator[FakeImap]:
    server = FakeImap(gmail_folders(), "IMAP4rev1 X-GM-EXT-1 SPECIAL-USE")
    yield server
    server.close()


def where(box: Box) -> dict[str, list[str]]:
    return {mid: sorted(s.folder for s in v) for mid, v in stored_messages(box).items()}


def test_gmail_all_mail_is_deduplicated_against_labels(box: Box, gmail: FakeImap) -> None:
    job = run(box, gmail)
    assert job.status == "done", job.message
    assert where(box) == {
        "<g1@gmail.example>": ["INBOX", "Work"],
        "<g2@gmail.example>": ["INBOX"],
        "<g3@gmail.example>": ["Sent"],
        "<g4@gmail.example>": ["Archive"],  # only in All Mail: archived
        "<g5@gmail.example>": ["Archive"],
    }
    assert job.skipped == 3  # All Mail's copies of 1, 2, 3
    assert any("X-GM-MSGID" in c for c in gmail.commands)
    assert not any("Starred" in c and "EXAMINE" in c for c in gmail.commands)


def test_gmail_all_mail_can_be_skipped(box: Box, gmail: FakeImap) -> None:
    job = run(box, gmail, gmail_all_mail="skip")
    assert job.status == "done"
    assert "<g4@gmail.example>" not in where(box)
    assert not any("All Mail" in c and "EXAMINE" in c for c in gmail.commands)


def test_xlist_names_map_onto_local_folders(box: Box) -> None:
    folders = {
        "Posteingang": Folder("\\HasNoChildren \\Inbox", [Msg(1, mail(1))]),
        "Gesendet": Folder("\\HasNoChildren \\Sent", [Msg(1, mail(2))]),
        "Spam": Folder("\\HasNoChildren \\Spam", [Msg(1, mail(3))]),
        "Papierkorb": Folder("\\HasNoChildren \\Trash", [Msg(1, mail(4))]),
    }
    server = FakeImap(folders, "IMAP4rev1 XLIST")
    try:
        assert run(box, server).status == "done"
    finally:
        server.close()
    assert where(box) == {
        "<g1@gmail.example>": ["INBOX"],
        "<g2@gmail.example>": ["Sent"],
        "<g3@gmail.example>": ["Junk"],
        "<g4@gmail.example>": ["Trash"],
    }
    assert any(" XLIST " in c for c in server.commands)


def test_rate_limits_pause_with_backoff_then_finish(box: Box, gmail: FakeImap) -> None:
    gmail.failures = [
        Failure("LOGIN", "NO [UNAVAILABLE] Temporary System Problem", times=1),
        Failure("BODY.PEEK[]", "NO [LIMIT] Too many simultaneous requests", times=2),
    ]
    sleeps: list[float] = []
    job = run(box, gmail, sleeps)
    assert job.status == "done", job.message
    assert sleeps == [0.5, 0.5, 1.0]  # login refused once; then doubling from --pause
    assert gmail.logins == 3  # a fresh connection after each pause
    assert len(where(box)) == 5


def test_a_server_that_stays_busy_ends_the_import(box: Box, gmail: FakeImap) -> None:
    gmail.failures = [
        Failure("BODY.PEEK[]", "* BYE [UNAVAILABLE] Temporary System Problem", times=100)
    ]
    sleeps: list[float] = []
    job = run(box, gmail, sleeps)
    assert job.status == "failed"
    assert "gave up after 6 reconnects without progress" in job.message
    assert "[UNAVAILABLE]" in job.message and "what was copied stays" in job.message
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


def test_wrong_password_names_app_passwords(box: Box, gmail: FakeImap) -> None:
    gmail.password = "something else"
    job = run(box, gmail)
    assert job.status == "failed"
    assert "refused the login for me@gmail.example: [AUTHENTICATIONFAILED]" in job.message
    assert "app password" in job.message
