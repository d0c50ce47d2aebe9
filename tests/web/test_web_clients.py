"""Client settings: the settings page, Thunderbird autoconfig, Apple profile, MTA-STS."""

from __future__ import annotations

import plistlib
import re
import subprocess
import xml.etree.ElementTree as ET

import pytest
from flask.testing import FlaskClient

from tests.web.web_helpers import ADMIN, HOST, Env, served


@pytest.mark.parametrize(
    "path", ["/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"]
)
def test_autoconfig_is_public_and_matches_config(admin: FlaskClient, env: Env, path: str) -> None:
    anon = admin.application.test_client()
    r = anon.get(path + f"?emailaddress={ADMIN}")
    assert r.status_code == 200
    assert r.mimetype == "application/xml"
    root = ET.fromstring(r.data)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "pillarbox.test"
    cfg = env.cfg
    incoming = {
        (s.get("type"), s.findtext("port"), s.findtext("socketType"))
        for s in provider.findall("incomingServer")
    }
    assert ("imap", str(cfg.listeners.imaps[0].port), "SSL") in incoming
    assert ("imap", str(cfg.listeners.imap[0].port), "STARTTLS") in incoming
    assert ("pop3", str(cfg.listeners.pop3s[0].port), "SSL") in incoming
    outgoing = [
        (s.findtext("port"), s.findtext("socketType")) for s in provider.findall("outgoingServer")
    ]
    assert outgoing[0] == (str(cfg.listeners.submissions[0].port), "SSL")
    for server in provider.iter():
        if server.tag == "hostname":
            assert server.text == "mail.pillarbox.test"
        if server.tag == "username":
            assert server.text == "%EMAILADDRESS%"


def test_autoconfig_escapes_and_ignores_foreign_domain(admin: FlaskClient) -> None:
    r = admin.get('/mail/config-v1.1.xml?emailaddress=x@"<evil>".org')
    root = ET.fromstring(r.data)
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "pillarbox.test"


def test_settings_page_lists_ports(admin: FlaskClient, env: Env) -> None:
    body = admin.get("/clients").get_data(as_text=True)
    assert str(env.cfg.listeners.imaps[0].port) in body
    assert str(env.cfg.listeners.submission[0].port) in body
    assert "Download profile" in body


def test_apple_profile(admin: FlaskClient, env: Env) -> None:
    r = admin.get(f"/clients/apple.mobileconfig?email={ADMIN}")
    assert r.status_code == 200
    assert r.mimetype == "application/x-apple-aspen-config"
    assert "attachment" in r.headers["Content-Disposition"]
    profile = plistlib.loads(r.data)
    assert profile["PayloadType"] == "Configuration"
    (account,) = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAddress"] == ADMIN
    assert account["IncomingMailServerHostName"] == "mail.pillarbox.test"
    assert account["IncomingMailServerPortNumber"] == env.cfg.listeners.imaps[0].port
    assert account["OutgoingMailServerPortNumber"] == env.cfg.listeners.submissions[0].port
    assert account["IncomingMailServerUseSSL"] is True
    # Same UUIDs on a second download: reinstalling replaces instead of duplicating.
    again = plistlib.loads(admin.get(f"/clients/apple.mobileconfig?email={ADMIN}").data)
    assert again["PayloadUUID"] == profile["PayloadUUID"]


def test_apple_profile_errors(admin: FlaskClient) -> None:
    assert admin.get("/clients/apple.mobileconfig?email=bad").status_code == 400
    assert admin.get("/clients/apple.mobileconfig?email=no@pillarbox.test").status_code == 404


def test_apple_profile_needs_sign_in(admin: FlaskClient) -> None:
    anon = admin.application.test_client()
    r = anon.get(f"/clients/apple.mobileconfig?email={ADMIN}")
    assert r.status_code == 302 and "/login" in r.location


def test_mta_sts_policy_public(admin: FlaskClient) -> None:
    r = admin.application.test_client().get("/.well-known/mta-sts.txt")
    assert r.status_code == 200
    lines = r.get_data(as_text=True).split("\r\n")
    assert lines[:3] == ["version: STSv1", "mode: testing", "mx: mail.pillarbox.test"]


# The request Outlook sends (MS-OXDSCLI 4.1), posted without cookie or CSRF token.
OUTLOOK_REQUEST = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>{email}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"""
RESPONSE_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


def _curl(url: str, body: str) -> tuple[int, str]:
    r = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            "-H",
            "Content-Type: text/xml",
            "-H",
            "User-Agent: Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0)",
            "--data-binary",
            body,
            "-w",
            "\n%{http_code}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    text, _, code = r.stdout.rpartition("\n")
    return int(code), text


def test_outlook_autodiscover_post_gets_settings(admin: FlaskClient, env: Env) -> None:
    cfg = env.cfg
    path = "/autodiscover/autodiscover.xml"
    with served(admin.application) as base:
        code, text = _curl(base + path, OUTLOOK_REQUEST.format(email=ADMIN.upper()))
        assert code == 200, text
        assert "form has expired" not in text
        root = ET.fromstring(text)
        assert root.tag.endswith("}Autodiscover")
        account = root.find(f"{RESPONSE_NS}Response/{RESPONSE_NS}Account")
        assert account is not None
        assert account.findtext(f"{RESPONSE_NS}Action") == "settings"
        protocols = {
            p.findtext(f"{RESPONSE_NS}Type"): p for p in account.findall(f"{RESPONSE_NS}Protocol")
        }
        assert set(protocols) == {"IMAP", "SMTP"}
        for kind, port in (
            ("IMAP", cfg.listeners.imaps[0].port),
            ("SMTP", cfg.listeners.submissions[0].port),
        ):
            p = protocols[kind]
            assert p.findtext(f"{RESPONSE_NS}Server") == cfg.hostname
            assert p.findtext(f"{RESPONSE_NS}Port") == str(port)
            assert p.findtext(f"{RESPONSE_NS}LoginName") == ADMIN
            assert p.findtext(f"{RESPONSE_NS}Encryption") == "SSL"
        # Garbage, a DTD, or an address no mailbox could have: 400, never settings.
        for body in (
            "not xml",
            OUTLOOK_REQUEST.format(email=".dot@pillarbox.test"),
            '<!DOCTYPE x [<!ENTITY a "b">]>' + OUTLOOK_REQUEST.format(email=ADMIN),
        ):
            code, text = _curl(base + path, body)
            assert code == 400 and "form has expired" not in text
        # The exemption is exactly that endpoint: other POSTs still need the token.
        code, text = _curl(base + "/users", "local=x")
        assert code == 400 and "form has expired" in text


def test_phone_qr_points_at_a_public_profile(admin: FlaskClient, env: Env) -> None:
    """Issue 19: the Mail apps page shows a QR code (segno) for phones; it opens the
    profile over HTTPS on the box's name, which a phone gets without signing in."""
    import urllib.parse

    page = admin.get("/clients").get_data(as_text=True)
    assert 'id="phone-qr-code" src="data:image/svg+xml' in page
    found = re.search(r'<code class="wrap" id="phone-url">([^<]+)</code>', page)
    assert found
    url = urllib.parse.urlsplit(found.group(1))
    assert (url.scheme, url.netloc, url.path) == ("https", HOST, "/mail/phone.mobileconfig")
    assert urllib.parse.parse_qs(url.query) == {"email": [ADMIN]}
    path = f"{url.path}?{url.query}"
    anon = admin.application.test_client()  # a phone: no session
    r = anon.get(path)
    assert r.status_code == 200 and r.mimetype == "application/x-apple-aspen-config"
    [account] = plistlib.loads(r.data)["PayloadContent"]
    assert account["EmailAddress"] == ADMIN and "IncomingPassword" not in account
    assert anon.get("/mail/phone.mobileconfig?email=a@elsewhere.example").status_code == 404
    assert anon.get("/mail/phone.mobileconfig?email=bad@@x").status_code == 400
