"""DNS records and their live checks (fake resolver), host name and smarthost forms."""

from __future__ import annotations

import html
import stat

import pytest
from flask.testing import FlaskClient

from appliance.dns import DnsResolver, SyncResolver
from tests.dnsserver import DnsServer
from tests.web.web_helpers import DOMAIN, HOST, Env, FakeResolver, complete_zone, post
from tests.zonecheck import check_zone
from webui import dnscheck


def by_purpose(checks: list[dnscheck.Check]) -> dict[str, dnscheck.Check]:
    return {c.record.purpose + " " + c.record.name: c for c in checks}


def test_expected_records_include_every_kind(env: Env) -> None:
    recs = dnscheck.expected_records(env.cfg, DOMAIN)
    kinds = {(r.rdtype, r.name) for r in recs}
    assert ("MX", DOMAIN) in kinds and ("A", HOST) in kinds and ("TXT", f"_dmarc.{DOMAIN}") in kinds
    assert ("TXT", f"pb1._domainkey.{DOMAIN}") in kinds  # from appliance.queue.dkim
    assert ("SRV", f"_imaps._tcp.{DOMAIN}") in kinds
    assert any(r.rdtype == "PTR" for r in recs)
    mx = next(r for r in recs if r.rdtype == "MX")
    assert mx.value == f"10 {HOST}" and mx.required


def test_everything_published_is_all_ok(env: Env) -> None:
    cfg = env.cfg
    checks = dnscheck.check_all(cfg, DOMAIN, SyncResolver(FakeResolver(complete_zone(cfg))))
    bad = [(c.record.name, c.status, c.detail) for c in checks if c.status != "ok"]
    assert bad == []
    assert dnscheck.summary(checks) == "ok"


def test_empty_zone_required_red_optional_amber(env: Env) -> None:
    checks = dnscheck.check_all(env.cfg, DOMAIN, SyncResolver(FakeResolver()))
    for c in checks:
        assert c.status == ("error" if c.record.required else "warning"), c.record
    assert dnscheck.summary(checks) == "error"


@pytest.mark.parametrize(
    ("key", "values", "status", "detail"),
    [
        ((DOMAIN, "MX"), ["10 mx.elsewhere.example"], "error", "Mail goes elsewhere"),
        ((DOMAIN, "TXT"), ["v=spf1 mx -all", "v=spf1 a -all"], "error", "only one"),
        ((DOMAIN, "TXT"), ["v=spf1 include:other.example -all"], "warning", "add mx"),
        ((f"autoconfig.{DOMAIN}", "CNAME"), ["other.example"], "warning", "Points elsewhere"),
        ((f"_imaps._tcp.{DOMAIN}", "SRV"), ["0 1 993 other.example"], "warning", "another host"),
        (
            ("pb1._domainkey." + DOMAIN, "TXT"),
            ["v=DKIM1; k=rsa; p=OLDKEY"],
            "error",
            "different key",
        ),
    ],
)
def test_wrong_values_flagged(
    env: Env, key: tuple[str, str], values: list[str], status: str, detail: str
) -> None:
    cfg = env.cfg
    zone = complete_zone(cfg)
    zone[key] = values
    checks = dnscheck.check_all(cfg, DOMAIN, SyncResolver(FakeResolver(zone)))
    (check,) = [c for c in checks if c.record.name == key[0] and c.record.rdtype == key[1]]
    assert check.status == status
    assert detail in check.detail
    assert check.found


def test_cname_answered_by_a_record_is_fine(env: Env) -> None:
    cfg = env.cfg
    zone = complete_zone(cfg)
    del zone[(f"autoconfig.{DOMAIN}", "CNAME")]
    zone[(f"autoconfig.{DOMAIN}", "A")] = ["192.0.2.10"]
    checks = by_purpose(dnscheck.check_all(cfg, DOMAIN, SyncResolver(FakeResolver(zone))))
    assert checks[f"Client setup (autoconfig) autoconfig.{DOMAIN}"].status == "ok"


def test_ptr_wrong_name(env: Env) -> None:
    cfg = env.cfg
    zone = complete_zone(cfg)
    zone[("10.2.0.192.in-addr.arpa", "PTR")] = ["dsl-192-0-2-10.isp.example"]
    checks = dnscheck.check_all(cfg, DOMAIN, SyncResolver(FakeResolver(zone)))
    ptr = next(c for c in checks if c.record.rdtype == "PTR")
    assert ptr.status == "error" and "dsl-192-0-2-10.isp.example" in ptr.found


def test_dns_outage_is_a_warning_not_an_error(env: Env) -> None:
    checks = dnscheck.check_all(env.cfg, DOMAIN, SyncResolver(FakeResolver(dead=True)))
    assert {c.status for c in checks} == {"warning"}
    assert "did not answer" in checks[0].detail


def test_dnspython_resolver_against_local_server(env: Env) -> None:
    """The real resolver class against a tiny UDP DNS server on loopback."""
    zone = {
        ("pillarbox.test", "MX"): ["10 Mail.Pillarbox.Test."],
        ("pillarbox.test", "TXT"): ['"v=spf1 " "mx -all"'],
    }
    with DnsServer(zone) as server:
        resolver = SyncResolver(DnsResolver(timeout=3, nameservers=["127.0.0.1"], port=server.port))
        assert dnscheck.published(resolver, "pillarbox.test", "MX") == ["10 mail.pillarbox.test"]
        assert dnscheck.published(resolver, "pillarbox.test", "TXT") == ["v=spf1 mx -all"]
        assert dnscheck.published(resolver, "nothing.pillarbox.test", "A") == []


# ------------------------------------------------------------------ the page and its forms


def test_dns_page_shows_status_and_found_values(admin: FlaskClient, env: Env) -> None:
    env.resolver.records.update(
        {(DOMAIN, "MX"): [f"10 {HOST}"], (DOMAIN, "TXT"): ["v=spf1 mx -all"]}
    )
    body = admin.get("/dns").get_data(as_text=True)
    assert 'class="row-ok"' in body and 'class="row-error"' in body
    assert "v=spf1 mx -all" in body
    assert "v=DKIM1" in body  # DKIM value to publish
    assert (DOMAIN, "MX") in env.resolver.queries


def test_hostname_form(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/dns/hostname", {"hostname": "Box.Example.org"}, form_page="/dns")
    assert r.status_code == 302
    assert env.cfg.hostname == "box.example.org"
    assert "reload" in env.ctl.calls
    r = post(admin, "/dns/hostname", {"hostname": "not valid!"}, form_page="/dns")
    assert r.status_code == 400 and "full host name" in r.get_data(as_text=True)
    assert env.cfg.hostname == "box.example.org"


def test_hostname_change_keeps_comments(admin: FlaskClient, env: Env) -> None:
    text = env.cfg_path.read_text()
    env.cfg_path.write_text("# my notes\n" + text)
    post(admin, "/dns/hostname", {"hostname": "mx.example.org"}, form_page="/dns")
    assert env.cfg_path.read_text().startswith("# my notes\n")


def test_smarthost_set_and_remove(admin: FlaskClient, env: Env) -> None:
    r = post(
        admin,
        "/dns/smarthost",
        {
            "host": "smtp.relay.example",
            "port": "587",
            "tls": "starttls",
            "username": "me",
            "password": "relay-secret",
            "action": "save",
        },
        form_page="/dns",
    )
    assert r.status_code == 302
    (relay,) = env.cfg.smarthosts
    assert (relay.host, relay.port, relay.tls, relay.username) == (
        "smtp.relay.example",
        587,
        "starttls",
        "me",
    )
    assert relay.password_file is not None
    assert relay.password_file.read_text() == "relay-secret"
    assert stat.S_IMODE(relay.password_file.stat().st_mode) == 0o600
    assert "relay-secret" not in env.cfg_path.read_text()
    assert "reload" in env.ctl.calls
    assert "smtp.relay.example:587" in admin.get("/dns").get_data(as_text=True)
    r = post(admin, "/dns/smarthost", {"action": "remove"}, form_page="/dns")
    assert r.status_code == 302
    assert env.cfg.smarthosts == ()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"host": "", "port": "587", "tls": "starttls"}, "relay&#39;s host name"),
        ({"host": "smtp.x.example", "port": "0", "tls": "starttls"}, "port number"),
        ({"host": "smtp.x.example", "port": "abc", "tls": "starttls"}, "port number"),
        ({"host": "smtp.x.example", "port": "587", "tls": "none"}, "how to encrypt"),
        (
            {"host": "smtp.x.example", "port": "587", "tls": "tls", "password": "pw"},
            "needs a user name",
        ),
    ],
)
def test_smarthost_errors(admin: FlaskClient, env: Env, form: dict[str, str], message: str) -> None:
    r = post(admin, "/dns/smarthost", {**form, "action": "save"}, form_page="/dns")
    assert r.status_code == 400
    assert message in r.get_data(as_text=True)
    assert env.cfg.smarthosts == ()


def test_smarthost_when_daemon_down(admin: FlaskClient, env: Env) -> None:
    env.ctl.running = False
    post(
        admin,
        "/dns/smarthost",
        {"host": "smtp.relay.example", "port": "465", "tls": "tls", "action": "save"},
        form_page="/dns",
    )
    assert env.cfg.smarthosts[0].tls == "tls"
    assert "not running" in admin.get("/dns").get_data(as_text=True)


def test_unreadable_dkim_key_is_reported(env: Env) -> None:
    cfg = env.cfg
    cfg.dkim_dir.parent.mkdir(parents=True, exist_ok=True)
    cfg.dkim_dir.write_text("not a directory")  # key creation fails with an OSError
    checks = dnscheck.check_all(cfg, DOMAIN, SyncResolver(FakeResolver()))
    (dkim_check,) = [c for c in checks if "._domainkey." in c.record.name]
    assert dkim_check.status == "error" and "unsigned" in dkim_check.detail


# ------------------------------------------------------------------ zone file, columns, copy


def test_zone_download_parses_and_holds_every_record(admin: FlaskClient, env: Env) -> None:
    r = admin.get(f"/dns/zone?domain={DOMAIN}")
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == f'attachment; filename="{DOMAIN}.zone"'
    text = r.get_data(as_text=True)
    assert check_zone(text, env.cfg, DOMAIN) >= 10
    rsa = next(line for line in text.splitlines() if "k=rsa" in line)
    assert rsa.count('" "') >= 1  # the 2048-bit key is split into <= 255-octet strings
    assert admin.get("/dns/zone?domain=other.example").status_code == 404
    assert f'href="/dns/zone?domain={DOMAIN}"' in admin.get("/dns").get_data(as_text=True)


def test_priority_column_and_copy_buttons(admin: FlaskClient, env: Env) -> None:
    body = admin.get("/dns").get_data(as_text=True)
    assert "<th>Priority</th>" in body
    mx_row = next(row for row in body.split("<tr") if "Incoming mail (MX)" in row)
    assert '<td class="priority">10</td>' in mx_row
    assert f"10 {HOST}" not in mx_row  # the value column holds the host alone
    for rec in dnscheck.expected_records(env.cfg, DOMAIN):
        if rec.known:
            assert f'data-copy="{html.escape(rec.data)}"' in body, rec
    assert "/static/copy.js" in body
    assert admin.get("/static/copy.js").status_code == 200


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"host": "smtp.nowhere.example"}, "could not be found"),
        ({"host": "closed.relay.example"}, "did not answer on port 587"),
        ({"host": "smtp.relay.example", "password": "wrong"}, "refused the user name or password"),
        ({"host": "smtp.relay.example", "tls": "tls"}, "The encrypted connection"),
    ],
)
def test_smarthost_is_tested_before_it_is_used(
    admin: FlaskClient, env: Env, form: dict[str, str], words: str
) -> None:
    """Issue 19: connect, EHLO, STARTTLS and AUTH against a real relay on loopback; any
    failure is said in words and nothing is saved."""
    data = {"port": "587", "tls": "starttls", "username": "me", "password": "relay-secret"}
    r = post(admin, "/dns/smarthost", {**data, **form, "action": "save"}, form_page="/dns")
    assert r.status_code == 400
    page = r.get_data(as_text=True)
    assert words in page and "Traceback" not in page and "Errno" not in page
    assert env.cfg.smarthosts == ()
    assert not (env.cfg.data_dir / "smarthost-password").exists()
