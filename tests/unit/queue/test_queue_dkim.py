"""DKIM keys (generated once, 0600), DNS records, and signatures dkimpy verifies."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import dkim as dkimpy
import pytest

from appliance import config as config_mod
from appliance.queue import dkim

MESSAGE = (
    b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hello\r\n"
    b"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\nMessage-ID: <x1@example.org>\r\n\r\n"
    b"Hi Bob.\r\n"
)


def _config(tmp_path: Path, algorithm: str = "both") -> config_mod.Config:
    cfg = config_mod.loads(f'hostname = "mail.example.org"\ndata_dir = "{tmp_path}"\n', tmp_path)
    return dataclasses.replace(
        cfg,
        dkim=config_mod.Dkim(selector="sel1", algorithm=algorithm),  # type: ignore[arg-type]
    )


def _dnsfunc(records: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    table = {name + ".": value.encode() for name, value in records}
    assert len(table) == len(records)  # one key per DNS name

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return table.get(name.decode())

    return lookup


def test_keys_generated_once_with_0600(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    first = dkim.dns_records(cfg, "Example.ORG")
    rsa_key = tmp_path / "dkim" / "example.org" / "sel1.rsa.key"
    ed_key = tmp_path / "dkim" / "example.org" / "sel1.ed25519.key"
    for p in (rsa_key, ed_key):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    before = rsa_key.read_bytes()
    assert dkim.dns_records(cfg, "example.org") == first
    assert rsa_key.read_bytes() == before
    assert [name for name, _ in first] == [
        "sel1._domainkey.example.org",
        "sel1-ed._domainkey.example.org",
    ]
    assert first[0][1].startswith("v=DKIM1; k=rsa; p=MII")
    assert first[1][1].startswith("v=DKIM1; k=ed25519; p=")
    assert not list((tmp_path / "dkim" / "example.org").glob(".*tmp"))


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519", "both"])
def test_signatures_verify(tmp_path: Path, algorithm: str) -> None:
    cfg = _config(tmp_path, algorithm)
    headers = dkim.sign(cfg, "example.org", MESSAGE)
    expected = 2 if algorithm == "both" else 1
    assert headers.count(b"DKIM-Signature:") == expected
    signed = headers + MESSAGE
    lookup = _dnsfunc(dkim.dns_records(cfg, "example.org"))
    d = dkimpy.DKIM(signed)
    for idx in range(expected):
        assert d.verify(idx=idx, dnsfunc=lookup)
    # A changed body breaks every signature.
    tampered = signed.replace(b"Hi Bob.", b"Hi Eve.")
    for idx in range(expected):
        try:
            ok = dkimpy.DKIM(tampered).verify(idx=idx, dnsfunc=lookup)
        except dkimpy.ValidationError:
            ok = False
        assert not ok


def test_rejects_path_like_domain(tmp_path: Path) -> None:
    with pytest.raises(dkim.DkimError):
        dkim.dns_records(_config(tmp_path), "../etc")


def test_public_copies_serve_dns_records_without_private_key(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert dkim.ensure_keys(cfg, ["example.org", "example.com"]) == 0
    base = tmp_path / "dkim" / "example.com"
    pub = base / "sel1.rsa.txt"
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert pub.read_text().strip() == dkim.load_key(cfg, "example.com", "rsa").record_value
    # dns_records reads the public copy (what an unprivileged web UI can do).
    pub.write_text("v=DKIM1; k=rsa; p=FROMFILE\n")
    assert dkim.dns_records(cfg, "example.com")[0] == (
        "sel1._domainkey.example.com",
        "v=DKIM1; k=rsa; p=FROMFILE",
    )
    assert dkim.ensure_keys(cfg, ["../bad"]) == 1
