"""Fuzz every POST route of the web UI with random form fields (issue 16, "Done means"):
a signed-in admin with a valid CSRF token, hypothesis-chosen fields and values. No
answer may be a 500, and the process's memory stays under a ceiling.

Left out: ``certs.acme`` (starts a background job that talks to an ACME directory).
"""

from __future__ import annotations

import urllib.parse
from collections import Counter
from pathlib import Path

import psutil
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.accounts import Accounts
from tests.web.mail_ctl import MailCtl
from tests.web.web_helpers import ADMIN, Env, admin_client

SKIP = {"certs.acme", "static"}
FIELDS = [
    "email", "password", "confirm", "code", "secret", "domain", "local", "quota_mb", "label",
    "disabled", "action", "hostname", "host", "port", "username", "user", "snapshot",
    "mailbox", "source", "target", "targets", "device", "name", "cert", "key", "next",
]  # fmt: skip
MEMORY_CEILING = 150 * 1024 * 1024  # bytes of RSS growth over the whole run

text = st.text(max_size=300) | st.text(alphabet="0123456789-", max_size=12)
values = text | st.sampled_from(["", "1", "0", ADMIN, "pillarbox.test", "x" * 5000])
forms = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(min_size=1, max_size=20), values, max_size=8
)
path_value = st.sampled_from(
    [ADMIN, "nobody@pillarbox.test", "pillarbox.test", "sdb", "1", "..", "%00"]
) | st.text(min_size=1, max_size=40)


def _post_routes(app: Flask) -> list[tuple[str, list[str]]]:
    out = []
    for rule in app.url_map.iter_rules():
        if "POST" in (rule.methods or ()) and rule.endpoint not in SKIP:
            out.append((rule.rule, sorted(rule.arguments)))
    return sorted(out)


def _fill(rule: str, args: dict[str, str]) -> str:
    path = rule
    for name, value in args.items():
        for pattern in (f"<int:{name}>", f"<{name}>", f"<path:{name}>"):
            if pattern in path:
                path = path.replace(pattern, urllib.parse.quote(value, safe=""))
    return path


def test_random_forms_never_500(env: Env, accounts_template: Path) -> None:
    env.ctl = MailCtl(cfg=env.cfg)  # the user's mail pages need the sieve.* / mailbox.* commands
    client = admin_client(env, accounts_template)
    accounts = Accounts(env.cfg.accounts_db)
    routes = _post_routes(client.application)
    process = psutil.Process()
    start_rss = process.memory_info().rss
    seen: set[str] = set()
    statuses: Counter[int] = Counter()
    to_login = [0]

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def one(data: st.DataObject) -> None:
        rule, arguments = data.draw(st.sampled_from(routes))
        args = {
            a: str(data.draw(st.integers(0, 10**6)))
            if f"<int:{a}>" in rule
            else data.draw(path_value)
            for a in arguments
        }
        form = data.draw(forms)
        with client.session_transaction() as session:  # a valid session and token each time
            session["user"] = ADMIN
            session["pw"] = accounts.password_stamp(ADMIN)
            session["csrf"] = "test-csrf-token"
        form["csrf_token"] = "test-csrf-token"
        r = client.post(_fill(rule, args), data=form)
        assert r.status_code < 500, f"{rule} {args} {form!r}: {r.status_code}"
        assert r.status_code != 400 or "form has expired" not in r.get_data(as_text=True)
        seen.add(rule)
        statuses[r.status_code] += 1
        if (
            r.status_code == 302
            and "/login" in r.location
            and rule not in ("/logout", "/login/code")
        ):
            to_login[0] += 1

    one()
    growth = process.memory_info().rss - start_rss
    print(f"routes={len(seen)}/{len(routes)} statuses={dict(statuses)} rss +{growth // 1024} KiB")
    assert to_login[0] < sum(statuses.values()) // 10  # the session held: views were reached
    assert growth < MEMORY_CEILING


def test_every_post_route_is_fuzzed(env: Env, accounts_template: Path) -> None:
    """The route list is the app's own: a new form is fuzzed without editing this file."""
    client = admin_client(env, accounts_template)
    endpoints = {
        r.endpoint for r in client.application.url_map.iter_rules() if "POST" in (r.methods or ())
    }
    assert {"auth.login", "mail.users", "twofactor.confirm", "setup.unlock"} <= endpoints
    assert len(_post_routes(client.application)) == len(endpoints - SKIP)
