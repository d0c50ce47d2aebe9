"""Port 25 holds its banner for ``[smtp] greet_wait``; a client that talks before it
(RFC 5321 3.1, 4.3.1: the client waits for the greeting) gets 554 and is dropped.
Submission ports greet at once."""

from __future__ import annotations

import dataclasses
import smtplib
import socket
import time
from pathlib import Path

import pytest

from appliance import config
from appliance.config import Smtp
from tests.protocol.smtp.smtpenv import DOMAIN, SmtpEnv

WAIT = 0.6


@pytest.fixture
def greet_env(env: SmtpEnv) -> SmtpEnv:
    env.ctx.config = dataclasses.replace(env.ctx.config, smtp=Smtp(greet_wait=WAIT))
    return env


def read_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    out = b""
    while chunk := sock.recv(4096):
        out += chunk
    return out


def test_early_talker_refused_and_dropped(greet_env: SmtpEnv) -> None:
    sock = socket.create_connection(("127.0.0.1", greet_env.ports["smtp"]), timeout=10)
    sock.sendall(b"EHLO bot.example\r\nMAIL FROM:<spam@bot.example>\r\n")
    started = time.monotonic()
    answer = read_all(sock)  # the server closes: recv returns b"" rather than timing out
    assert time.monotonic() - started < WAIT + 3
    sock.close()
    assert answer.startswith(b"554 5.5.1 mail.pillarbox.test Protocol error")
    assert answer.count(b"\r\n") == 1  # no 220, no answer to the EHLO
    assert greet_env.service.status()["early_talkers"] == 1


def test_talk_after_the_wait_but_before_reading_is_still_early(greet_env: SmtpEnv) -> None:
    sock = socket.create_connection(("127.0.0.1", greet_env.ports["smtp"]), timeout=10)
    time.sleep(WAIT / 3)
    sock.sendall(b"QUIT\r\n")
    assert read_all(sock).startswith(b"554 5.5.1 ")
    sock.close()


def test_polite_client_greeted_after_the_wait(greet_env: SmtpEnv) -> None:
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", greet_env.ports["smtp"], timeout=10) as s:
        assert time.monotonic() - started >= WAIT * 0.9  # the banner was held
        assert s.ehlo("mx.remote.test")[0] == 250
        msg = b"From: x@remote.test\r\nSubject: polite\r\n\r\nhi\r\n"
        assert s.sendmail("x@remote.test", [f"bob@{DOMAIN}"], msg) == {}
    assert len(greet_env.messages(f"bob@{DOMAIN}")) == 1
    assert greet_env.service.status().get("early_talkers", 0) == 0


def test_client_gone_during_the_wait_is_just_closed(greet_env: SmtpEnv) -> None:
    sock = socket.create_connection(("127.0.0.1", greet_env.ports["smtp"]), timeout=10)
    sock.close()
    time.sleep(WAIT + 0.3)
    assert greet_env.service.status()["connections"] == 0


@pytest.mark.parametrize("listener", ["submission", "submissions"])
def test_submission_ports_greet_at_once(greet_env: SmtpEnv, listener: str) -> None:
    started = time.monotonic()
    with greet_env.smtp(listener) as s:
        assert time.monotonic() - started < WAIT / 2
        assert s.ehlo("laptop")[0] == 250


def test_submission_client_talking_first_is_served(greet_env: SmtpEnv) -> None:
    sock = socket.create_connection(("127.0.0.1", greet_env.ports["submission"]), timeout=10)
    sock.sendall(b"EHLO laptop\r\nQUIT\r\n")
    answer = read_all(sock)
    sock.close()
    assert answer.startswith(b"220 ") and b"\r\n221 " in answer


def test_greet_wait_zero_turns_the_check_off(env: SmtpEnv) -> None:
    env.ctx.config = dataclasses.replace(env.ctx.config, smtp=Smtp(greet_wait=0))
    sock = socket.create_connection(("127.0.0.1", env.ports["smtp"]), timeout=10)
    sock.sendall(b"EHLO eager\r\nQUIT\r\n")
    answer = read_all(sock)
    sock.close()
    assert answer.startswith(b"220 ") and b"\r\n221 " in answer


def test_greet_wait_defaults(tmp_path: Path) -> None:
    assert config.loads('hostname = "mx.example.org"', tmp_path).smtp.greet_wait == 1.0
    assert config.loads("dev = true", tmp_path).smtp.greet_wait == 0.0  # keeps tests fast
    cfg = config.loads("dev = true\n[smtp]\ngreet_wait = 0.25", tmp_path)
    assert cfg.smtp.greet_wait == 0.25
    with pytest.raises(config.ConfigError, match=r"smtp\.greet_wait"):
        config.loads("[smtp]\ngreet_wait = 31", tmp_path)
