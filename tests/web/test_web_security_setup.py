"""Issue 16: the setup-code throttle is per source address, and the code file is gone
once setup is done (nothing prints it any more)."""

from __future__ import annotations

from flask.testing import FlaskClient

from appliance.setupsecret import read_or_create_secret, secret_path
from tests.harness import pillarbox
from tests.web.web_helpers import CSRF_RE, Env, complete_setup, make_app


def _try(client: FlaskClient, secret: str, ip: str) -> int:
    page = client.get("/setup/", environ_base={"REMOTE_ADDR": ip}).get_data(as_text=True)
    token = CSRF_RE.search(page)
    assert token
    r = client.post(
        "/setup/",
        data={"secret": secret, "csrf_token": token.group(1)},
        environ_base={"REMOTE_ADDR": ip},
    )
    return r.status_code


def test_wrong_codes_from_one_address_do_not_lock_out_another(env: Env) -> None:
    app = make_app(env)
    secret = read_or_create_secret(env.cfg)
    attacker = app.test_client()
    statuses = [_try(attacker, "WRONG-CODE", "192.0.2.66") for _ in range(6)]
    assert statuses[-1] == 429
    assert _try(attacker, secret, "192.0.2.66") == 429  # this address waits
    owner = app.test_client()
    assert _try(owner, secret, "192.0.2.10") == 302  # the owner's laptop is not blocked


def test_code_file_deleted_after_setup_and_not_printed(client: FlaskClient, env: Env) -> None:
    cfg = env.cfg
    assert secret_path(cfg).exists()
    complete_setup(client, cfg)
    assert not secret_path(cfg).exists()
    make_app(env)  # a restarted web UI does not make it again
    assert not secret_path(cfg).exists()
    done = pillarbox("setup-secret", "--config", str(env.cfg_path), check=False)
    assert done.returncode == 1 and done.stdout == "" and "set up" in done.stderr
    assert not secret_path(cfg).exists()


def test_setup_takes_the_secret_off_the_console_banner(client: FlaskClient, env: Env) -> None:
    assert ["write-issue", "/etc/issue.d/50-pillarbox.issue"] not in env.helper_commands()
    complete_setup(client, env.cfg)
    assert ["write-issue", "/etc/issue.d/50-pillarbox.issue"] in env.helper_commands()
