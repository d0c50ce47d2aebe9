"""Parse zone-file text with dnspython and check it holds every record the DNS page shows
(appliance.dnsrecords.expected_records): shared by the web download and CLI tests."""

from __future__ import annotations

import dns.rdatatype
import dns.zone

from appliance import config
from appliance.dnsrecords import MAX_TXT_STRING, expected_records


def _value(rdata: object, rdtype: str) -> str:
    r: object = rdata
    if rdtype == "TXT":
        strings = r.strings  # type: ignore[attr-defined]
        assert all(len(s) <= MAX_TXT_STRING for s in strings)  # RFC 1035 3.3
        return b"".join(strings).decode()
    if rdtype == "MX":
        return f"{r.preference} {r.exchange.to_text(omit_final_dot=True)}"  # type: ignore[attr-defined]
    if rdtype == "SRV":
        target = r.target.to_text(omit_final_dot=True)  # type: ignore[attr-defined]
        return f"{r.priority} {r.weight} {r.port} {target}"  # type: ignore[attr-defined]
    if rdtype == "CNAME":
        return str(r.target.to_text(omit_final_dot=True))  # type: ignore[attr-defined]
    return str(r)


def check_zone(text: str, cfg: config.Config, domain: str) -> int:
    """Assert ``text`` is valid zone text with each known record; returns how many."""
    zone = dns.zone.from_text(text, origin=domain, relativize=False, check_origin=False)
    records = expected_records(cfg, domain)
    known = [r for r in records if r.known]
    for rec in records:
        if not rec.known:  # a placeholder (the box's public address): a comment
            assert f"; {rec.name} IN {rec.rdtype} " in text, rec
            continue
        rdataset = zone.find_rdataset(rec.name + ".", dns.rdatatype.from_text(rec.rdtype))
        assert rec.value in {_value(r, rec.rdtype) for r in rdataset}, rec
    total = sum(len(rds) for _, node in zone.nodes.items() for rds in node.rdatasets)
    assert total == len(known)
    return total
