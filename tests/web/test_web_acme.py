"""A certificate over ACME HTTP-01 from Debian's pebble (a local test CA), end to end:
pebble asks our fake DNS where mail.pillarbox.test is, fetches the challenge from the web
UI on its real HTTP port, and signs; the web UI installs the result."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask.testing import FlaskClient

from appliance.dns import SyncResolver
from tests.dnsfake import FakeResolver
from tests.dnsserver import DnsServer
from tests.harness import free_port, wait_port
from tests.web.web_helpers import (
    ADMIN,
    HOST,
    NOW,
    Env,
    admin_client,
    make_pair,
    new_env,
    post,
    served,
)
from webui import acme_issue, acme_renew, certs, certviews
from webui.acme_issue import AcmeProblem, AcmeSettings
from webui.jobs import JobRunner

PEBBLE = shutil.which("pebble")
pytestmark = pytest.mark.skipif(PEBBLE is None, reason="needs Debian's pebble")

POLICY_HOST = "mta-sts.pillarbox.test"


def _tls_pair(directory: Path) -> tuple[Path, Path]:
    """Pebble's own HTTPS certificate (for 127.0.0.1), self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "pebble-cert.pem", directory / "pebble-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(params=["127.0.0.1"])
def acme_box(
    request: pytest.FixtureRequest, tmp_path: Path, accounts_template: Path
) -> Iterator[tuple[Env, FlaskClient]]:
    env = new_env(tmp_path)
    web_port, acme_port = free_port(), free_port()
    cert_path, key_path = _tls_pair(tmp_path)
    cfg_json = tmp_path / "pebble.json"
    cfg_json.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{acme_port}",
                    "managementListenAddress": f"127.0.0.1:{free_port()}",
                    "certificate": str(cert_path),
                    "privateKey": str(key_path),
                    "httpPort": web_port,
                    "tlsPort": free_port(),
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    # HOST and POLICY_HOST resolve to the address under test (pebble's HTTP-01 check)
    fake_dns = DnsServer({(HOST, "A"): [request.param], (POLICY_HOST, "A"): [request.param]}, 60)
    pebble_env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    pebble = subprocess.Popen(
        [str(PEBBLE), "-config", str(cfg_json), "-dnsserver", f"127.0.0.1:{fake_dns.port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=pebble_env,
    )
    admin = admin_client(env, accounts_template)
    app = admin.application
    app.extensions["pillarbox"].acme = AcmeSettings(
        directory=f"https://127.0.0.1:{acme_port}/dir", verify=str(cert_path), timeout=60
    )
    try:
        with served(app, web_port):
            wait_port("127.0.0.1", acme_port, timeout=30)
            yield env, admin
    finally:
        pebble.terminate()
        pebble.wait(10)
        fake_dns.close()


def test_acme_http01_issues_and_installs(acme_box: tuple[Env, FlaskClient]) -> None:
    env, admin = acme_box
    # mta-sts.<domain> points here too: it joins the certificate (MTA-STS over HTTPS).
    env.resolver.records[(HOST, "A")] = ["192.0.2.10"]
    env.resolver.records[(POLICY_HOST, "A")] = ["192.0.2.10"]
    r = post(admin, "/certificate/acme", {"email": ADMIN}, form_page="/certificate")
    assert r.status_code == 302 and "/jobs/" in r.location
    runner: JobRunner = admin.application.extensions["pillarbox"].jobs
    job = runner.wait(r.location.rsplit("/", 1)[1], 90)
    assert job is not None and job.state == "done", job
    cfg = env.cfg
    info = certs.read_installed(cfg.tls.cert)
    assert info is not None and info.covers(HOST) and not info.self_signed
    assert info.covers(POLICY_HOST)
    assert "Pebble" in info.issuer
    assert cfg.tls.self_signed is False
    assert "reload" in env.ctl.calls
    # The account key is kept for the next renewal, private.
    key = cfg.data_dir / "acme" / "account-key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert acme_renew.due(cfg, dt.datetime.now(dt.UTC)) is False  # fresh: nothing to renew
    assert (cfg.data_dir / "acme" / "issued").read_text().strip() == HOST
    # Challenge answers are removed once the order is done.
    assert admin.application.extensions["pillarbox"].challenges._items == {}


@pytest.mark.parametrize("acme_box", ["127.0.0.2"], indirect=True)  # HOST leads elsewhere
def test_acme_unreachable_box_fails_clearly(acme_box: tuple[Env, FlaskClient]) -> None:
    env, admin = acme_box
    r = post(admin, "/certificate/acme", {"email": ""}, form_page="/certificate")
    runner: JobRunner = admin.application.extensions["pillarbox"].jobs
    job = runner.wait(r.location.rsplit("/", 1)[1], 90)
    assert job is not None and job.state == "failed"
    assert "could not reach http://mail.pillarbox.test/" in job.message
    assert not env.cfg.tls.cert.exists()


def test_acme_bad_email_shown(admin: FlaskClient) -> None:
    r = post(admin, "/certificate/acme", {"email": "not an address"}, form_page="/certificate")
    assert r.status_code == 400
    assert "Enter an email address" in r.get_data(as_text=True)


def test_challenge_endpoint_is_public_and_exact(admin: FlaskClient) -> None:
    store = admin.application.extensions["pillarbox"].challenges
    store.put("tok_EN-1", "tok_EN-1.thumbprint")
    anon = admin.application.test_client()
    r = anon.get("/.well-known/acme-challenge/tok_EN-1")
    assert r.status_code == 200 and r.data == b"tok_EN-1.thumbprint"
    assert anon.get("/.well-known/acme-challenge/other").status_code == 404
    assert anon.get("/.well-known/acme-challenge/tok_EN-1.x").status_code == 404


# ------------------------------------------------------------------ renewal


def _install_cert(env: Env, days: int) -> None:
    cert, key = make_pair(days=days)
    env.cfg.tls.cert.parent.mkdir(parents=True, exist_ok=True)
    env.cfg.tls.cert.write_bytes(cert)
    env.cfg.tls.key.write_bytes(key)


@pytest.mark.parametrize(
    ("marker", "days", "expected"),
    [(None, 5, False), (HOST, 10, True), (HOST, 60, False), ("old.example.org", 5, False)],
)
def test_renewal_due(env: Env, marker: str | None, days: int, expected: bool) -> None:
    _install_cert(env, days)
    if marker is not None:
        (env.cfg.data_dir / "acme").mkdir(parents=True, exist_ok=True)
        (env.cfg.data_dir / "acme" / "issued").write_text(marker + "\n")
    assert acme_renew.due(env.cfg, NOW) is expected


def test_renew_if_due_installs_new_certificate(admin: FlaskClient, env: Env) -> None:
    ctx = admin.application.extensions["pillarbox"]
    _install_cert(env, 10)
    acme_renew.record_issued(env.cfg)
    fresh = make_pair(days=90)
    calls: list[str] = []

    def fake_issue(cfg: object, *args: object) -> tuple[bytes, bytes]:
        calls.append("issue")
        return fresh

    assert acme_renew.renew_if_due(ctx, certviews.install, fake_issue) is True
    assert env.cfg.tls.cert.read_bytes() == fresh[0]
    assert "reload" in env.ctl.calls
    assert acme_renew.renew_if_due(ctx, certviews.install, fake_issue) is False
    assert calls == ["issue"]


def test_renew_failure_keeps_old_certificate(admin: FlaskClient, env: Env) -> None:
    ctx = admin.application.extensions["pillarbox"]
    _install_cert(env, 10)
    acme_renew.record_issued(env.cfg)
    before = env.cfg.tls.cert.read_bytes()

    def failing_issue(*args: object) -> tuple[bytes, bytes]:
        raise AcmeProblem("The certificate authority did not answer in time.")

    assert acme_renew.renew_if_due(ctx, certviews.install, failing_issue) is False
    assert env.cfg.tls.cert.read_bytes() == before


def test_policy_hosts_only_names_that_point_here() -> None:
    records = {
        ("mail.a.test", "A"): ["192.0.2.1"],
        ("mta-sts.a.test", "A"): ["192.0.2.1"],
        ("mta-sts.b.test", "A"): ["198.51.100.7"],  # hosted elsewhere
    }
    resolver = SyncResolver(FakeResolver(records, failing={"mta-sts.d.test"}))
    domains = ["a.test", "b.test", "c.test", "d.test"]
    names = acme_issue.policy_hosts("mail.a.test", domains, resolver)
    assert names == ["mta-sts.a.test"]
    assert acme_issue.policy_hosts("mail.none.test", ["a.test"], resolver) == []
