"""Before asking Let's Encrypt: is the host name public, does its address record point to a
public address, and does port 80 of that address reach this web UI?

The last check is a real HTTP request: a random token is put in the challenge store and
fetched from ``http://<A address>:<port>/.well-known/acme-challenge/<token>`` with the
host name in the Host header, the way the CA fetches HTTP-01 challenges (RFC 8555 8.3).
From inside the network this needs the router to answer for its own public address
("hairpin"); most do, and a failure says what to look at.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from appliance.dns import DnsError, SyncLookup
from webui.acme_issue import ChallengeStore
from webui.dnscheck import published

log = logging.getLogger(__name__)

Level = Literal["ok", "warning", "error"]
PROBE_TIMEOUT = 5.0  # seconds for the port 80 request
# Names that exist only inside a network (RFC 2606, RFC 6761, RFC 6762, RFC 8375) and
# names commonly used only on home networks: no public CA can check them.
PRIVATE_SUFFIXES = (
    ".test",
    ".example",
    ".invalid",
    ".localhost",
    ".local",
    ".home.arpa",
    ".internal",
    ".lan",
    ".home",
    ".localdomain",
)

Fetch = Callable[[str, int, str, str], str | None]


@dataclass(frozen=True)
class Finding:
    title: str
    level: Level
    text: str


def private_name(hostname: str) -> str | None:
    """Why ``hostname`` cannot get a public certificate, in words; None when it can."""
    name = hostname.lower().rstrip(".")
    suffix = next((s for s in PRIVATE_SUFFIXES if name.endswith(s)), None)
    if "." not in name:
        return f"{hostname} is a name without a domain, known only on your own network."
    if suffix is None:
        return None
    return (
        f"{hostname} ends in {suffix}, a name that exists only on your own network (or in "
        "tests). Let's Encrypt checks names from the internet, so it cannot give a "
        "certificate for it. Use a domain you registered (for example mail.example.org) on "
        "the DNS page, or keep the self-signed certificate: mail apps ask once whether to "
        "trust it."
    )


def http_fetch(address: str, port: int, host: str, path: str) -> str | None:
    """The body of ``http://address:port/path`` sent with ``Host: host``, None on any
    failure (refused, timed out, not 200)."""
    conn = http.client.HTTPConnection(address, port, timeout=PROBE_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        body = resp.read(4096).decode("ascii", "replace")
        return body if resp.status == 200 else None
    except (OSError, http.client.HTTPException) as exc:
        log.info("certcheck=port80-failed address=%s port=%s error=%s", address, port, exc)
        return None
    finally:
        conn.close()


def check(
    hostname: str,
    resolver: SyncLookup,
    store: ChallengeStore,
    port: int = 80,
    fetch: Fetch = http_fetch,
) -> list[Finding]:
    """The three checks in order; later ones are skipped (not run) after an error."""
    why = private_name(hostname)
    if why is not None:
        return [Finding("Public name", "error", why)]
    found = [Finding("Public name", "ok", f"{hostname} is a public name.")]
    try:
        addresses = published(resolver, hostname, "A")
    except DnsError as exc:
        log.info("certcheck=a-lookup-failed host=%s error=%s", hostname, exc)
        addresses = []
    if not addresses:
        found.append(
            Finding(
                "Address record",
                "error",
                f"{hostname} has no address (A) record yet. Add one on the DNS page of your "
                "provider, pointing to your internet connection's address.",
            )
        )
        return found
    address = addresses[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if ip is None or not ip.is_global:
        found.append(
            Finding(
                "Address record",
                "error",
                f"{hostname} points to {address}, an address only your own network knows. "
                "Point it to your internet connection's public address and forward port 80 "
                "on your router to this box.",
            )
        )
        return found
    found.append(Finding("Address record", "ok", f"{hostname} points to {address}."))
    token = secrets.token_urlsafe(24)
    expected = secrets.token_urlsafe(24)
    store.put(token, expected)
    try:
        body = fetch(address, port, hostname, f"/.well-known/acme-challenge/{token}")
    finally:
        store.remove(token)
    if body is not None and body.strip() == expected:
        found.append(Finding("Port 80", "ok", f"http://{hostname}/ reaches this box."))
    else:
        found.append(
            Finding(
                "Port 80",
                "error",
                f"http://{hostname}/ does not reach this box. Forward port 80 on your router "
                f"to this box, and check that {address} is your connection's address.",
            )
        )
    return found
