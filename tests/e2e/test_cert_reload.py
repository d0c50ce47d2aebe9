"""A certificate replaced on disk and `ctl reload`: the real daemon serves the new one on
every TLS listener (implicit TLS rebound, STARTTLS from the current context), and a
connection open across the reload keeps working."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import ssl
from pathlib import Path

from appliance.ctl.client import CtlClient
from appliance.tls import generate_self_signed
from tests.harness import Daemon, connect, write_config


def client() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def implicit(d: Daemon, listener: str) -> bytes:
    with connect(d.addr(listener), tls=True, timeout=10) as sock:
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def starttls(d: Daemon, listener: str) -> bytes:
    host, port = d.addr(listener)
    if listener == "submission":
        with smtplib.SMTP(host, port, timeout=10) as s:
            s.starttls(context=client())
            sock = s.sock
            assert isinstance(sock, ssl.SSLSocket)
            der = sock.getpeercert(binary_form=True)
    elif listener == "imap":
        imap = imaplib.IMAP4(host, port, timeout=10)
        imap.starttls(client())
        der = imap.sock.getpeercert(binary_form=True)
        imap.logout()
    else:
        pop = poplib.POP3(host, port, timeout=10)
        pop.stls(client())
        sock = pop.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
        pop.quit()
    assert der is not None
    return der


def certificates(d: Daemon) -> dict[str, bytes]:
    served = {name: implicit(d, name) for name in ("submissions", "imaps", "pop3s")}
    served.update({name: starttls(d, name) for name in ("submission", "imap", "pop3")})
    return served


def test_reload_serves_a_new_certificate_everywhere(tmp_path: Path) -> None:
    with Daemon(write_config(tmp_path)) as d:
        cfg = d.config
        before = certificates(d)
        assert len(set(before.values())) == 1  # one certificate for every listener
        held = imaplib.IMAP4_SSL(*d.addr("imaps"), ssl_context=client(), timeout=10)
        generate_self_signed(cfg.tls.cert, cfg.tls.key, cfg.hostname)
        assert CtlClient(cfg.ctl_socket, 30).call("reload") == {"reloaded": True}
        after = certificates(d)
        assert len(set(after.values())) == 1
        assert set(after.values()) != set(before.values())
        assert held.noop()[0] == "OK"  # opened before the reload, on the old listener
        held.logout()
        # the listeners kept their addresses
        status = CtlClient(cfg.ctl_socket, 30).call("status")["services"]
        assert status["imap"]["listening"] == [
            f"127.0.0.1:{d.addr('imap')[1]}",
            f"127.0.0.1:{d.addr('imaps')[1]}",
        ]
