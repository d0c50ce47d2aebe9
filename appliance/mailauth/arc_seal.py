"""ARC sealing (RFC 8617) of mail this box forwards, with dkimpy's ``arc_sign``.

A forwarded message keeps every original header field and its body byte for byte; the
box prepends one ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results)
that records what it found when the message arrived, so the next hop can still judge the
original DKIM/SPF results after SPF broke on the forward.

The chain validation status ``cv`` (RFC 8617 4.1.3, 5.1.1) comes from this box's own
verdict on the incoming chain: ``none`` when the message arrived without ARC sets,
``pass`` when it carried a chain that validated here, ``fail`` otherwise (an invalid or
unverifiable chain, e.g. on a DNS error). ARC signatures are RSA-SHA256 (dkimpy seals
with rsa-sha256 only).

Blocking (RSA signing): call from a worker thread.
"""

from __future__ import annotations

import re

import authres
import dkim as dkimpy

MAX_INSTANCE = 50  # RFC 8617 4.2.1: i= is at most 50
_ARC_SEAL = re.compile(rb"^arc-seal[ \t]*:", re.IGNORECASE | re.MULTILINE)


class ArcSealError(Exception):
    """The message cannot be sealed (bad AR value, chain too long, key problem)."""


def arc_sets(message: bytes) -> int:
    """How many ARC sets (ARC-Seal fields) the header section carries."""
    head = message.split(b"\r\n\r\n", 1)[0]
    return len(_ARC_SEAL.findall(head))


def sealing_results(authserv_id: str, auth_results: str, existing_sets: int) -> str:
    """The Authentication-Results value the seal records: this box's results with the
    ``arc`` method set to the chain validation status for the next instance."""
    try:
        parsed = authres.AuthenticationResultsHeader.parse(
            "Authentication-Results: " + auth_results
        )
    except authres.core.AuthResError as exc:
        raise ArcSealError(f"unparsable Authentication-Results: {exc}") from exc
    arc = [r.result.lower() for r in parsed.results if r.method == "arc"]
    # RFC 8617 5.1.1: the first instance carries cv=none; later ones cv=pass only for a
    # chain this box validated, else cv=fail.
    cv = "none" if existing_sets == 0 else "pass" if arc == ["pass"] else "fail"
    parts = [str(r) for r in parsed.results if r.method != "arc"]
    parts.append(f"arc={cv}")
    return f"{authserv_id}; " + "; ".join(parts)


def seal(
    message: bytes,
    *,
    domain: str,
    selector: str,
    private_key: bytes,
    authserv_id: str,
    auth_results: str,
    timestamp: int | None = None,
) -> bytes:
    """The ARC set to prepend to ``message`` (CRLF line ends), as header bytes."""
    existing = arc_sets(message)
    if existing >= MAX_INSTANCE:
        raise ArcSealError(f"the message already carries {existing} ARC sets")
    ar = sealing_results(authserv_id, auth_results, existing)
    # dkimpy takes the recorded results from an Authentication-Results field naming our
    # authserv-id; it is given only to the signer (never signed by the AMS, RFC 8617 4.1.2)
    # and not sent: the ARC-Authentication-Results field carries it to the next hop.
    view = b"Authentication-Results: " + ar.encode("utf-8") + b"\r\n" + message
    try:
        fields = dkimpy.arc_sign(
            view,
            selector.encode("ascii"),
            domain.encode("ascii"),
            private_key,
            authserv_id.encode("ascii"),
            timestamp=timestamp,
        )
    except dkimpy.DKIMException as exc:
        raise ArcSealError(f"ARC sealing for {domain}: {exc}") from exc
    if len(fields) != 3:
        raise ArcSealError(f"ARC sealing for {domain} produced no ARC set")
    return b"".join(f if f.endswith(b"\r\n") else f + b"\r\n" for f in fields)
