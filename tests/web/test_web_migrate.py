"""The "Bring your old mail" page: presets, starting an import through the ctl socket,
progress, the wizard step, and the streamed download (memory bounded, real daemon)."""

from __future__ import annotations

import base64
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.accounts import Accounts
from appliance.ctl.client import CtlClient
from appliance.ctl.protocol import CtlError
from appliance.mime.summary import is_current, summarize
from appliance.store.maildir import MaildirStore
from tests.harness import Daemon, rss
from tests.web.web_helpers import ADMIN, Env, post

JOB = {
    "job_id": "abc123",
    "kind": "imap",
    "user": ADMIN,
    "params": {
        "host": "imap.gmail.com",
        "port": 993,
        "security": "tls",
        "login": "me@gmail.com",
        "gmail_all_mail": "dedupe",
    },
    "status": "running",
    "message": "",
    "total": 200,
    "copied": 120,
    "skipped": 5,
    "failed": 1,
    "failures": ["Work: message UID 7 vanished from the server during the copy"],
    "folder": "Work",
    "rate": 41.5,
    "started": 1_800_000_000.0,
}


class MigrateCtl:
    def __init__(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs = jobs
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.blocks = [b"first-", b"second-", b"third"]

    def __call__(self, cmd: str, **args: Any) -> Any:
        self.calls.append((cmd, args))
        if cmd == "migrate_status":
            return {"running": any(j["status"] == "running" for j in self.jobs), "jobs": self.jobs}
        if cmd == "migrate_start":
            if args.get("host") == "refuse.example":
                raise CtlError("an import is running already; wait for it or cancel it")
            return {"job_id": "new1"}
        if cmd == "migrate_export":
            block = self.blocks.pop(0)
            return {"token": "t", "data": base64.b64encode(block).decode(), "done": not self.blocks}
        raise CtlError(f"unknown command {cmd!r}")


@pytest.fixture
def ctl(env: Env, monkeypatch: pytest.MonkeyPatch) -> MigrateCtl:
    fake = MigrateCtl([dict(JOB)])
    monkeypatch.setattr(env.ctl, "call", fake)
    return fake


def test_page_shows_presets_progress_and_summary(admin: FlaskClient, ctl: MigrateCtl) -> None:
    page = admin.get("/migrate/").get_data(as_text=True)
    for label, host in (
        ("Gmail", "imap.gmail.com"),
        ("Yahoo Mail", "imap.mail.yahoo.com"),
        ("iCloud Mail", "imap.mail.me.com"),
        ("Outlook.com", "outlook.office365.com"),
    ):
        assert label in page and f'data-host="{host}"' in page
    assert "app password" in page
    assert '<progress max="200" value="125"' in page
    assert "41.5" in page and "vanished from the server" in page
    assert 'href="/migrate/"' in page  # in the main navigation
    assert "Setup steps" not in page
    wizard = admin.get("/migrate/?wizard=1").get_data(as_text=True)
    assert 'class="current">Old mail' in wizard and "Skip this step" in wizard
    assert admin.get("/migrate/status.json").get_json()["jobs"][0]["copied"] == 120


def test_start_sends_the_job_to_the_daemon(admin: FlaskClient, ctl: MigrateCtl) -> None:
    r = post(
        admin,
        "/migrate/start",
        {
            "preset": "gmail",
            "host": "",
            "port": "",
            "security": "tls",
            "login": "me@gmail.com",
            "password": "app-pass",
            "user": ADMIN,
            "folder_map": "Old stuff = Archive/Old",
        },
        form_page="/migrate/",
    )
    assert r.status_code == 302 and r.location.endswith("job=new1")
    ((_cmd, args),) = [c for c in ctl.calls if c[0] == "migrate_start"]
    assert args == {
        "kind": "imap",
        "user": ADMIN,
        "host": "imap.gmail.com",
        "port": 993,
        "security": "tls",
        "login": "me@gmail.com",
        "password": "app-pass",
        "folder_map": {"Old stuff": "Archive/Old"},
        "gmail_all_mail": "dedupe",
    }


@pytest.mark.parametrize(
    ("form", "text"),
    [
        ({"host": "imap.x", "login": "a", "password": "", "user": ADMIN}, "Fill in the server"),
        ({"host": "imap.x", "login": "a", "password": "p", "user": "x@y.z"}, "Choose one of"),
        (
            {"host": "refuse.example", "login": "a", "password": "p", "user": ADMIN},
            "The import did not start: an import is running already",
        ),
        (
            {
                "host": "imap.x",
                "login": "a",
                "password": "p",
                "user": ADMIN,
                "folder_map": "nonsense",
            },
            "folder map line",
        ),
    ],
)
def test_start_errors_are_shown(
    admin: FlaskClient, ctl: MigrateCtl, form: dict[str, str], text: str
) -> None:
    r = post(
        admin,
        "/migrate/start",
        {"security": "tls", **form},
        form_page="/migrate/",
        follow_redirects=True,
    )
    assert text in r.get_data(as_text=True)


def test_download_is_streamed_from_the_daemon(admin: FlaskClient, ctl: MigrateCtl) -> None:
    r = admin.get(f"/migrate/download/{ADMIN}", buffered=False)
    assert r.status_code == 200 and r.is_streamed
    assert r.headers["Content-Disposition"] == f'attachment; filename="{ADMIN}-mail.tar"'
    assert b"".join(r.response) == b"first-second-third"
    assert admin.get("/migrate/download/nobody@pillarbox.test").status_code == 404


@pytest.mark.slow
def test_large_mailbox_download_keeps_memory_bounded(
    admin: FlaskClient, env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 MiB of mail through the real daemon: the web side holds about one block, the
    daemon does not grow with the mailbox, and the archive is a valid Maildir tar."""
    cfg = env.cfg
    store = MaildirStore(
        cfg.mail_dir, notify=lambda _e: None, summarizer=summarize, summary_current=is_current
    )
    store.ensure_user(ADMIN)
    body = b"Subject: big\r\n\r\n" + (b"x" * 1022 + b"\r\n") * 1024 * 2  # 2 MiB
    src = tmp_path / "big.eml"
    count = 150
    for i in range(count):
        src.write_bytes(b"Message-ID: <big%d@x>\r\n" % i + body)
        store.append(ADMIN, "INBOX", src, ["\\Seen"], 1_700_000_000 + i)
    with Daemon(env.cfg_path) as daemon:
        assert daemon.proc is not None
        real = CtlClient(cfg.ctl_socket)
        monkeypatch.setattr(env.ctl, "call", real.call)
        before = rss(daemon.proc.pid)
        tracemalloc.start()
        r = admin.get(f"/migrate/download/{ADMIN}", buffered=False)
        out = tmp_path / "mail.tar"
        total = 0
        peak_daemon = before
        with out.open("wb") as fh:
            for i, chunk in enumerate(r.response):
                fh.write(chunk)
                total += len(chunk)
                if i % 50 == 0:
                    peak_daemon = max(peak_daemon, rss(daemon.proc.pid))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert total > count * len(body)
    assert peak < 16 * 1024 * 1024, f"web side peaked at {peak} bytes"
    assert peak_daemon - before < 40 * 1024 * 1024, f"daemon grew {peak_daemon - before} bytes"
    with tarfile.open(out) as tar:
        files = [m for m in tar.getmembers() if m.isfile() and "/cur/" in m.name]
        assert len(files) == count
        first = tar.extractfile(sorted(files, key=lambda m: m.mtime)[0])
        assert first is not None and first.read() == b"Message-ID: <big0@x>\r\n" + body
        assert all(m.name.endswith(":2,S") for m in files)


def test_the_wizard_leads_from_dns_to_old_mail(admin: FlaskClient, ctl: MigrateCtl) -> None:
    page = admin.get("/dns").get_data(as_text=True)
    assert 'href="/migrate/?wizard=1"' in page and "bring your old mail" in page


def test_own_page_acts_on_the_signed_in_user_only(admin: FlaskClient, ctl: MigrateCtl) -> None:
    other = dict(JOB, job_id="other1", user="someone@pillarbox.test")
    ctl.jobs.append(other)
    page = admin.get("/me/old-mail/").get_data(as_text=True)
    assert 'name="user"' not in page  # no choice of mailbox
    assert "someone@pillarbox.test" not in page
    assert [j["job_id"] for j in admin.get("/me/old-mail/status.json").get_json()["jobs"]] == [
        "abc123"
    ]
    r = post(
        admin,
        "/me/old-mail/start",
        {
            "preset": "yahoo",
            "login": "me@yahoo.com",
            "password": "pw",
            "user": "someone@pillarbox.test",
        },
        form_page="/me/old-mail/",
    )
    assert r.status_code == 302
    ((_cmd, args),) = [c for c in ctl.calls if c[0] == "migrate_start"]
    assert args["user"] == ADMIN and args["host"] == "imap.mail.yahoo.com"
    r = post(admin, "/me/old-mail/cancel", {"job_id": "other1"}, form_page="/me/old-mail/")
    assert r.status_code == 404
    assert not [c for c in ctl.calls if c[0] == "migrate_cancel"]
    r = admin.get("/me/old-mail/download", buffered=False)
    assert b"".join(r.response) == b"first-second-third"
    exports = [a for c, a in ctl.calls if c == "migrate_export"]
    assert exports[0] == {"user": ADMIN}


@pytest.mark.parametrize(
    ("host", "port"),
    [
        ("127.0.0.1", "993"),
        ("localhost", "143"),
        ("imap.example.org", "25"),
        ("sneaky.example.org", "993"),  # a name that points at the box itself
        ("[::1]", "993"),
    ],
)
def test_own_page_refuses_the_box_itself_and_other_ports(
    admin: FlaskClient, env: Env, ctl: MigrateCtl, host: str, port: str
) -> None:
    env.resolver.records[("sneaky.example.org", "A")] = ["127.0.0.2"]
    r = post(
        admin,
        "/me/old-mail/start",
        {"host": host, "port": port, "security": "tls", "login": "me", "password": "pw"},
        form_page="/me/old-mail/",
        follow_redirects=True,
    )
    assert "port 993 or 143" in r.get_data(as_text=True)
    assert not [c for c in ctl.calls if c[0] == "migrate_start"]


def test_own_page_accepts_a_provider_it_cannot_resolve(admin: FlaskClient, ctl: MigrateCtl) -> None:
    """The fake resolver knows no name: the daemon, not the web UI, reports a bad host."""
    r = post(
        admin,
        "/me/old-mail/start",
        {
            "host": "imap.example.org",
            "port": "993",
            "security": "tls",
            "login": "me",
            "password": "pw",
        },
        form_page="/me/old-mail/",
    )
    assert r.status_code == 302
    assert [c for c in ctl.calls if c[0] == "migrate_start"]


def test_a_user_who_is_not_an_admin_has_the_own_page_only(
    admin: FlaskClient, env: Env, ctl: MigrateCtl
) -> None:
    bob = "bob@pillarbox.test"
    Accounts(env.cfg.accounts_db).add_user(bob, "bob horse battery staple")
    client = admin.application.test_client()
    r = post(client, "/login", {"email": bob, "password": "bob horse battery staple"})
    assert r.status_code == 302
    page = client.get("/me/old-mail/").get_data(as_text=True)
    assert 'aria-current="page">Old mail' in page  # in the My account navigation
    assert "/me/old-mail/static/migrate.js" in page
    assert client.get("/me/old-mail/static/migrate.js").status_code == 200
    assert client.get("/me").status_code == 200
    assert 'href="/me/old-mail/"' in client.get("/me").get_data(as_text=True)
    for path in ("/migrate/", "/migrate/status.json", f"/migrate/download/{bob}"):
        assert client.get(path).status_code == 403, path
    r = client.get("/me/old-mail/download", buffered=False)
    assert r.status_code == 200
    b"".join(r.response)
    assert next(a for c, a in ctl.calls if c == "migrate_export") == {"user": bob}
