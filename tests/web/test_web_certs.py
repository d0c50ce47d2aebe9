"""Certificate page: details, upload validation and install, self-signed renewal."""

from __future__ import annotations

import io
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask.testing import FlaskClient

from tests.web.web_helpers import NOW, Env, make_pair, post
from webui import certs


def upload(admin: FlaskClient, cert: bytes | None, key: bytes | None) -> object:
    data: dict[str, object] = {}
    if cert is not None:
        data["cert"] = (io.BytesIO(cert), "fullchain.pem")
    if key is not None:
        data["key"] = (io.BytesIO(key), "privkey.pem")
    return post(
        admin,
        "/certificate/upload",
        data,
        form_page="/certificate",
        content_type="multipart/form-data",
    )


def test_page_without_certificate(admin: FlaskClient) -> None:
    body = admin.get("/certificate").get_data(as_text=True)
    assert "No certificate is installed yet" in body


def test_self_signed_regeneration(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/certificate/self-signed", {}, form_page="/certificate")
    assert r.status_code == 302
    cfg = env.cfg
    info = certs.read_installed(cfg.tls.cert)
    assert info is not None and info.self_signed and info.covers("mail.pillarbox.test")
    assert stat.S_IMODE(cfg.tls.key.stat().st_mode) == 0o600
    body = admin.get("/certificate").get_data(as_text=True)
    assert "Self-signed" in body and "mail.pillarbox.test" in body
    assert "reload" in env.ctl.calls


def test_upload_valid_pair_installs(admin: FlaskClient, env: Env) -> None:
    cert, key = make_pair(("mail.pillarbox.test", "pillarbox.test"))
    r = upload(admin, cert, key)
    assert r.status_code == 302  # type: ignore[attr-defined]
    cfg = env.cfg
    assert cfg.tls.cert.read_bytes() == cert
    assert cfg.tls.key.read_bytes() == key
    assert stat.S_IMODE(cfg.tls.key.stat().st_mode) == 0o600
    assert cfg.tls.self_signed is False
    body = admin.get("/certificate").get_data(as_text=True)
    assert "Test CA" in body and "Valid." in body


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"names": ("other.example.org",)}, "not for this box"),
        ({"days": -2, "start_days": -30}, "expired on"),
        ({"start_days": 5}, "only valid from"),
    ],
)
def test_upload_refusals(
    admin: FlaskClient, env: Env, kwargs: dict[str, object], message: str
) -> None:
    cert, key = make_pair(**kwargs)  # type: ignore[arg-type]
    r = upload(admin, cert, key)
    assert r.status_code == 400  # type: ignore[attr-defined]
    assert message in r.get_data(as_text=True)  # type: ignore[attr-defined]
    assert not env.cfg.tls.cert.exists()


def test_upload_mismatched_key(admin: FlaskClient, env: Env) -> None:
    cert, _ = make_pair()
    _, other = make_pair()
    r = upload(admin, cert, other)
    assert r.status_code == 400  # type: ignore[attr-defined]
    assert "does not belong" in r.get_data(as_text=True)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        (None, b"k", "Choose the certificate file"),
        (b"c", None, "Choose the private key file"),
        (b"garbage", b"garbage", "not a PEM certificate"),
    ],
)
def test_upload_missing_or_garbage(
    admin: FlaskClient, cert: bytes | None, key: bytes | None, message: str
) -> None:
    r = upload(admin, cert, key)
    assert r.status_code == 400  # type: ignore[attr-defined]
    assert message in r.get_data(as_text=True)  # type: ignore[attr-defined]


def test_wildcard_matching() -> None:
    cert, _ = make_pair(("*.pillarbox.test",))
    info = certs.describe(x509.load_pem_x509_certificate(cert))
    assert info.covers("mail.pillarbox.test")
    assert not info.covers("pillarbox.test")
    assert not info.covers("a.mail.pillarbox.test")


def test_encrypted_key_refused() -> None:
    cert, key = make_pair()
    private = serialization.load_pem_private_key(key, None)
    locked = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    with pytest.raises(certs.CertProblem, match="passphrase"):
        certs.validate_upload(cert, locked, "mail.pillarbox.test", NOW)
