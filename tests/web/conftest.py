"""Fixtures for the web UI: an app on a throw-away config with every outside dependency
faked (see web_helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.accounts import Accounts
from tests.web.web_helpers import ADMIN, PASSWORD, Env, admin_client, make_app, new_env


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return new_env(tmp_path)


@pytest.fixture
def app(env: Env) -> Flask:
    return make_app(env)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def accounts_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """accounts.sqlite holding the domain and first admin, hashed once per test run."""
    path = tmp_path_factory.mktemp("accounts") / "accounts.sqlite"
    accounts = Accounts(path)
    accounts.add_domain("pillarbox.test")
    accounts.add_user(ADMIN, PASSWORD, is_admin=True)
    accounts.close()  # last connection closed: the WAL is folded into the main file
    return path


@pytest.fixture
def admin(env: Env, accounts_template: Path) -> FlaskClient:
    """A client signed in as the first admin of a box that is set up.

    The wizard itself is walked in test_web_setup.py and the browser test; here the
    finished state is copied in and the session started directly, to keep tests fast.
    """
    return admin_client(env, accounts_template)
