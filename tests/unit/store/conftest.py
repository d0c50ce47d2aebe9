"""Fixtures for the MailStore contract: every implementation runs the same tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.events import MailboxChanged
from appliance.store.maildir import MaildirStore

USER = "alice@example.org"
OTHER = "bob@example.org"

StoreFactory = Callable[[], MaildirStore]


class Recorder:
    """Collects published MailboxChanged events and summarizer calls."""

    def __init__(self) -> None:
        self.events: list[MailboxChanged] = []
        self.summarized: list[Path] = []

    def notify(self, event: MailboxChanged) -> None:
        self.events.append(event)

    def summarize(self, path: Path) -> bytes:
        self.summarized.append(path)
        return b"summary:" + path.read_bytes()[:20]


IMPLEMENTATIONS = ["maildir", "maildir-nocache"]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(params=IMPLEMENTATIONS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path, recorder: Recorder) -> StoreFactory:
    root = tmp_path / "mail"

    def factory() -> MaildirStore:
        if request.param == "maildir":
            return MaildirStore(root, recorder.notify, recorder.summarize, lock_timeout=10)
        if request.param == "maildir-nocache":
            return MaildirStore(
                root, recorder.notify, recorder.summarize, lock_timeout=10, snapshot_cache=0
            )
        raise AssertionError(request.param)

    return factory


@pytest.fixture
def store(make_store: StoreFactory) -> Iterator[MaildirStore]:
    s = make_store()
    s.ensure_user(USER)
    yield s


@pytest.fixture
def message(tmp_path: Path) -> Callable[[str], Path]:
    """message("text") -> a CRLF RFC 5322 file with a unique Subject."""
    counter = iter(range(1, 1_000_000))

    def make(body: str = "hello") -> Path:
        n = next(counter)
        path = tmp_path / f"src-{n}.eml"
        path.write_bytes(
            (
                f"From: sender@example.net\r\nTo: {USER}\r\nSubject: message {n}\r\n"
                f"Message-ID: <{n}@example.net>\r\n\r\n{body}\r\n"
            ).encode()
        )
        return path

    return make
