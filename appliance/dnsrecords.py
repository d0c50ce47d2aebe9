"""The DNS records a domain needs for this box: one list for the web page (webui.dnscheck
checks each live) and for `pillarbox dns`, and that list as RFC 1035 zone-file text.

Values the box cannot know (its public address, the reverse name set by the provider)
are placeholders starting with "your "; the zone text carries them as comments.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from appliance import config
from appliance.dns import RdType
from appliance.queue import dkim

log = logging.getLogger(__name__)

MAX_TXT_STRING = 255  # RFC 1035 3.3: a <character-string> holds at most 255 octets
ZONE_TTL = 3600  # seconds, on every record of the zone text


@dataclass(frozen=True)
class Record:
    """One record to publish at the DNS provider."""

    purpose: str
    name: str
    rdtype: RdType
    value: str
    required: bool
    help: str

    @property
    def known(self) -> bool:
        """False for placeholders the admin fills in (their public address)."""
        return (
            bool(self.value)
            and not self.value.startswith("your ")
            and not (self.name.startswith("your "))
        )

    @property
    def priority(self) -> int | None:
        """MX preference / SRV priority: the first field of the value (RFC 1035 3.3.9,
        RFC 2782), shown in its own column."""
        if self.rdtype in ("MX", "SRV") and self.value.split()[0].isdigit():
            return int(self.value.split()[0])
        return None

    @property
    def data(self) -> str:
        """The value without the priority (what goes in the provider's value field)."""
        return self.value.split(None, 1)[1] if self.priority is not None else self.value


def dkim_records(cfg: config.Config, domain: str) -> list[tuple[str, str]]:
    """(name, TXT value) pairs of the domain's DKIM keys (created on first need)."""
    try:
        return [(n.rstrip("."), v) for n, v in dkim.dns_records(cfg, domain)]
    except (OSError, ValueError, dkim.DkimError) as exc:
        log.warning("dns=dkim-records-failed domain=%s error=%s", domain, exc)
        return []


def mta_sts_policy(cfg: config.Config) -> str:
    """RFC 8461 3.2 policy text; mode testing until the admin has a public certificate."""
    return f"version: STSv1\r\nmode: testing\r\nmx: {cfg.hostname}\r\nmax_age: 604800\r\n"


def mta_sts_id(cfg: config.Config) -> str:
    """RFC 8461 3.1: changes whenever the policy text changes."""
    return hashlib.sha256(mta_sts_policy(cfg).encode()).hexdigest()[:16]


def expected_records(cfg: config.Config, domain: str) -> list[Record]:
    host = cfg.hostname
    recs = [
        Record(
            "Incoming mail (MX)",
            domain,
            "MX",
            f"10 {host}",
            True,
            "Tells other mail servers to deliver mail for your domain to this box.",
        ),
        Record(
            "Box address (IPv4)",
            host,
            "A",
            "your public IPv4 address",
            True,
            "The address of your internet connection, pointing at this box.",
        ),
        Record(
            "Box address (IPv6)",
            host,
            "AAAA",
            "your public IPv6 address",
            False,
            "Only if your internet connection has IPv6.",
        ),
        Record(
            "Sender check (SPF)",
            domain,
            "TXT",
            "v=spf1 mx -all",
            True,
            "Says that only this box may send mail for your domain.",
        ),
    ]
    dkim = dkim_records(cfg, domain)
    if dkim:
        recs += [
            Record(
                "Signature key (DKIM)",
                name,
                "TXT",
                value,
                True,
                "Lets receivers verify that mail really comes from you.",
            )
            for name, value in dkim
        ]
    else:
        recs.append(
            Record(
                "Signature key (DKIM)",
                f"{cfg.dkim.selector}._domainkey.{domain}",
                "TXT",
                "",
                True,
                "The signing key could not be read or created; the system log says why.",
            )
        )
    recs += [
        Record(
            "Policy (DMARC)",
            f"_dmarc.{domain}",
            "TXT",
            f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}",
            True,
            "Tells receivers what to do with mail that fails SPF and DKIM.",
        ),
        Record(
            "Encryption policy (MTA-STS)",
            f"_mta-sts.{domain}",
            "TXT",
            f"v=STSv1; id={mta_sts_id(cfg)}",
            False,
            "Asks senders to always use encryption (RFC 8461).",
        ),
        Record(
            "MTA-STS policy host",
            f"mta-sts.{domain}",
            "CNAME",
            host,
            False,
            "Where senders fetch the encryption policy over HTTPS. Once this name points"
            " here, the next Let's Encrypt certificate covers it too.",
        ),
        Record(
            "TLS reports (TLSRPT)",
            f"_smtp._tls.{domain}",
            "TXT",
            f"v=TLSRPTv1; rua=mailto:postmaster@{domain}",
            False,
            "Receivers report encryption problems to postmaster (RFC 8460).",
        ),
        Record(
            "Client setup (autoconfig)",
            f"autoconfig.{domain}",
            "CNAME",
            host,
            False,
            "Thunderbird and others find the settings by themselves.",
        ),
    ]
    ports = {
        "_imaps._tcp": cfg.listeners.imaps,
        "_submissions._tcp": cfg.listeners.submissions,
        "_submission._tcp": cfg.listeners.submission,
        "_pop3s._tcp": cfg.listeners.pop3s,
    }
    for label, listen in ports.items():
        if listen:
            recs.append(
                Record(
                    f"Client setup ({label.split('.')[0][1:].upper()} SRV)",
                    f"{label}.{domain}",
                    "SRV",
                    f"0 1 {listen[0].port} {host}",
                    False,
                    "RFC 6186 / 8314 service record for mail programs.",
                )
            )
    recs.append(
        Record(
            "Reverse DNS (PTR)",
            "your public IPv4 address",
            "PTR",
            host,
            True,
            "Set by your internet provider, not your DNS host: ask them to name your "
            f"address {host}. Many receivers reject mail without it.",
        )
    )
    return recs


def _absolute(name: str) -> str:
    return name.rstrip(".") + "."


def txt_strings(value: str) -> str:
    """A TXT value as zone-file text: quoted character-strings of at most 255 octets
    (RFC 1035 3.3), with quotes and backslashes escaped (RFC 1035 5.1). The receiver
    joins them without a separator (RFC 7208 3.3, RFC 6376 3.6.2.2)."""
    raw = value.encode()
    chunks = [raw[i : i + MAX_TXT_STRING] for i in range(0, len(raw), MAX_TXT_STRING)] or [b""]
    out = []
    for chunk in chunks:
        text = chunk.decode("ascii", errors="strict")
        out.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return " ".join(out)


def rdata_text(rec: Record) -> str:
    """The record's RDATA in zone-file syntax (host names absolute)."""
    if rec.rdtype == "TXT":
        return txt_strings(rec.value)
    if rec.rdtype in ("MX", "SRV", "CNAME"):
        *fields, host = rec.value.split()
        return " ".join([*fields, _absolute(host)])
    return rec.value


def zone_text(cfg: config.Config, domain: str) -> str:
    """Every record of :func:`expected_records` as zone-file text for ``domain``: the
    ones with a known value as records, the placeholders as comments saying what to put."""
    lines = [
        f"; DNS records for {domain}, made by Pillarbox for {cfg.hostname}",
        f"$TTL {ZONE_TTL}",
    ]
    for rec in expected_records(cfg, domain):
        lines.append(f"; {rec.purpose}{'' if rec.required else ' (recommended)'}")
        if rec.known:
            lines.append(f"{_absolute(rec.name)} IN {rec.rdtype} {rdata_text(rec)}")
        else:
            lines.append(f"; {rec.name} IN {rec.rdtype} {rec.value}".replace("\n", " "))
    return "\n".join(lines) + "\n"
