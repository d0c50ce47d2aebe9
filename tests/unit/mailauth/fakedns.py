"""A fake AuthResolver: records from a dict, failures on demand, every query counted."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from appliance.mailauth.dns import DnsError, NoData, NoSuchDomain


@dataclass
class FakeResolver:
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)  # names answering SERVFAIL/timeout
    dead: bool = False  # every query fails temporarily
    queries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((name.lower(), rdtype), []).extend(values)

    async def lookup(self, name: str, rdtype: str) -> list[str]:
        name = name.lower().rstrip(".")
        self.queries.append((name, rdtype))
        if self.dead or name in self.failing:
            raise DnsError(f"{name}: SERVFAIL")
        if (name, rdtype) in self.records:
            return list(self.records[(name, rdtype)])
        if any(n == name for n, _ in self.records):
            raise NoData(f"{name}: no {rdtype}")
        raise NoSuchDomain(name)


@dataclass(frozen=True)
class DkimKey:
    private_pem: bytes
    dns_txt: str


def make_dkim_key(bits: int = 1024) -> DkimKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey(pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode())
