"""The outgoing-mail page: listing, retry, flush and delete over the ctl socket."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.web.web_helpers import QUEUE_ENTRY as ENTRY
from tests.web.web_helpers import Env, post


def test_empty_queue(admin: FlaskClient) -> None:
    body = admin.get("/queue").get_data(as_text=True)
    assert "0 messages waiting" in body and "Nothing is waiting" in body


def test_queue_lists_entries(admin: FlaskClient, env: Env) -> None:
    env.ctl.queue = [dict(ENTRY)]
    body = admin.get("/queue").get_data(as_text=True)
    assert "1 message waiting" in body
    assert "bob@example.net" in body and "greylisted" in body and "2 tries" in body


def test_daemon_down(admin: FlaskClient, env: Env) -> None:
    env.ctl.running = False
    body = admin.get("/queue").get_data(as_text=True)
    assert "not running" in body


def test_flush_and_retry(admin: FlaskClient, env: Env) -> None:
    env.ctl.queue = [dict(ENTRY)]
    assert post(admin, "/queue/flush", {}, form_page="/queue").status_code == 302
    assert post(admin, "/queue/0A1B2C3D4E5F/retry", {}, form_page="/queue").status_code == 302
    assert env.ctl.calls[-1] == "queue.retry" and env.ctl.call_args[-1] == {"id": "0A1B2C3D4E5F"}
    assert "queue.flush" in env.ctl.calls


def test_delete_needs_confirmation(admin: FlaskClient, env: Env) -> None:
    env.ctl.queue = [dict(ENTRY)]
    post(admin, "/queue/0A1B2C3D4E5F/delete", {}, form_page="/queue")
    assert "queue.delete" not in env.ctl.calls
    assert "Tick the box" in admin.get("/queue").get_data(as_text=True)
    post(admin, "/queue/0A1B2C3D4E5F/delete", {"confirm": "yes"}, form_page="/queue")
    assert env.ctl.queue == []


def test_delete_unknown_shows_daemon_error(admin: FlaskClient) -> None:
    post(admin, "/queue/FFFF/delete", {"confirm": "yes"}, form_page="/queue")
    assert "no queue entry FFFF" in admin.get("/queue").get_data(as_text=True)


def test_bad_queue_id_never_reaches_daemon(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/queue/bad-id/retry", {}, form_page="/queue")
    assert r.status_code == 302
    assert "queue.retry" not in env.ctl.calls
    assert "Unknown message" in admin.get("/queue").get_data(as_text=True)
