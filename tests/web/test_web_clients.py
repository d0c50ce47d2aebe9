"""Client settings: the settings page, Thunderbird autoconfig, Apple profile, MTA-STS."""

from __future__ import annotations

import plistlib
import xml.etree.ElementTree as ET

import pytest
from flask.testing import FlaskClient

from tests.web.web_helpers import ADMIN, Env


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
