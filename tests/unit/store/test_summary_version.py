"""Cached summaries made by an older parse are made again (mime.model.VERSION): an
upgraded box must not keep serving the old ENVELOPE/BODYSTRUCTURE from its index."""

from __future__ import annotations

from pathlib import Path

from appliance.mime import summary as mime_summary
from appliance.mime.model import VERSION, load_summary
from appliance.store.maildir import MaildirStore

USER = "alice@example.org"
MESSAGE = (
    b"From: alice@example.org (Alice Example)\r\nTo: bob@example.org\r\n"
    b"Subject: versions\r\n\r\nbody\r\n"
)


def _store(root: Path) -> MaildirStore:
    return MaildirStore(
        root,
        lambda _e: None,
        mime_summary.summarize,
        summary_current=mime_summary.is_current,
    )


def test_summary_of_an_older_version_is_made_again(tmp_path: Path) -> None:
    src = tmp_path / "m.eml"
    src.write_bytes(MESSAGE)
    store = _store(tmp_path / "mail")
    store.ensure_user(USER)
    uid = store.append(USER, "INBOX", src).uid
    fresh = store.summary(USER, "INBOX", uid)
    assert mime_summary.is_current(fresh)
    stale = fresh.replace(b'{"v":%d,' % VERSION, b'{"v":1,', 1)
    assert not mime_summary.is_current(stale)
    with store.user_index(USER).write() as conn:  # what an older version left in the index
        conn.execute("UPDATE summaries SET data = ?", (stale,))
    again = _store(tmp_path / "mail")
    assert again.summary(USER, "INBOX", uid) == fresh
    assert again.summaries(USER, "INBOX", [uid]) == {uid: fresh}
    with again.user_index(USER).write() as conn:  # and the cache holds the new one again
        (data,) = conn.execute("SELECT data FROM summaries").fetchone()
    assert bytes(data) == fresh
    assert load_summary(fresh).message.envelope is not None
