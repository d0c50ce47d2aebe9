"""Try a relay (smarthost) before the DNS page calls it OK: connect, EHLO, STARTTLS (or
implicit TLS), EHLO again, AUTH when a user name is given, QUIT. No mail is sent.

The answer is None (works) or a sentence that says what failed and what to check; the
protocol detail goes to the log.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

TIMEOUT = 15.0  # seconds per step

Connect = Callable[[tuple[str, int], float], socket.socket]


def _connect(address: tuple[str, int], timeout: float) -> socket.socket:
    return socket.create_connection(address, timeout)


@dataclass(frozen=True)
class Probe:
    """How the box reaches relays: the system's sockets and CA store (tests route to a
    local relay and trust its certificate)."""

    connect: Connect = _connect
    tls: Callable[[], ssl.SSLContext] = field(default=ssl.create_default_context)
    timeout: float = TIMEOUT


def _client(probe: Probe, host: str, port: int, implicit_tls: bool) -> smtplib.SMTP:
    context = probe.tls()

    class Client(smtplib.SMTP):
        def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
            sock = probe.connect((host, port), timeout)
            if implicit_tls:
                return context.wrap_socket(sock, server_hostname=host)
            return sock

    return Client(host, port, timeout=probe.timeout)  # the host is also the TLS server name


def check(probe: Probe, host: str, port: int, tls: str, username: str, password: str) -> str | None:
    step = "connect"
    client: smtplib.SMTP | None = None
    try:
        client = _client(probe, host, port, tls == "tls")
        step = "ehlo"
        client.ehlo()
        if tls == "starttls":
            step = "starttls"
            if not client.has_extn("starttls"):
                return f"{host} does not offer STARTTLS on port {port}; try SSL/TLS on port 465."
            client.starttls(context=probe.tls())
            client.ehlo()
        if username:
            step = "auth"
            client.login(username, password)
        step = "quit"
        client.quit()
        client = None
        return None
    except smtplib.SMTPAuthenticationError as exc:
        log.info("relay=auth-refused host=%s code=%s", host, exc.smtp_code)
        return f"{host} refused the user name or password. Check them with your provider."
    except smtplib.SMTPNotSupportedError:
        return f"{host} does not accept a login here; check the port and the encryption."
    except ssl.SSLCertVerificationError as exc:
        log.info("relay=bad-certificate host=%s error=%s", host, exc)
        return f"{host} showed a certificate that is not valid for it; check the host name."
    except (ssl.SSLError, smtplib.SMTPServerDisconnected) as exc:
        log.info("relay=tls-failed host=%s step=%s error=%s", host, step, exc)
        return (
            f"The encrypted connection to {host}:{port} failed. Port 587 uses STARTTLS, "
            "port 465 uses SSL/TLS: check that they match."
        )
    except socket.gaierror as exc:
        log.info("relay=unknown-host host=%s error=%s", host, exc)
        return f"{host} could not be found. Check the spelling and that the box is online."
    except (TimeoutError, OSError) as exc:
        log.info("relay=unreachable host=%s port=%s step=%s error=%s", host, port, step, exc)
        return (
            f"{host} did not answer on port {port}. Check the port, and that the box is online "
            "(some providers block outgoing mail ports)."
        )
    except (smtplib.SMTPException, ValueError) as exc:
        log.info("relay=refused host=%s step=%s error=%s", host, step, exc)
        return f"{host} refused the connection ({step}). Check the settings with your provider."
    finally:
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()
