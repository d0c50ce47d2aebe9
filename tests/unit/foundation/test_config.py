from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance import config
from tests.harness import write_config


def load_text(tmp_path: Path, text: str) -> config.Config:
    return config.loads(text, tmp_path)


def test_dev_defaults_round_trip(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, config.dev_config_text())
    assert cfg.dev
    assert cfg.hostname == "mail.pillarbox.test"
    assert cfg.listeners.smtp == (config.Listen("127.0.0.1", 2525),)
    assert cfg.listeners.imaps == (config.Listen("127.0.0.1", 2993),)
    assert cfg.listeners.web == (config.Listen("127.0.0.1", 8080),)
    assert cfg.data_dir == tmp_path / "."
    assert cfg.tls.cert == tmp_path / "tls" / "cert.pem"
    assert cfg.accounts_db == tmp_path / "." / "accounts.sqlite"


def test_appliance_defaults_use_standard_ports(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, 'hostname = "mail.example.org"\n')
    assert cfg.listeners.smtp == (config.Listen("0.0.0.0", 25),)
    assert cfg.listeners.submissions == (config.Listen("0.0.0.0", 465),)
    assert cfg.listeners.pop3s == (config.Listen("0.0.0.0", 995),)
    assert cfg.data_dir == Path("/var/lib/pillarbox")


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ('hostname = "bad host"', "hostname", "not a valid host name"),
        ('hostname = "-x.example"', "hostname", "not a valid host name"),
        ("hostname = 5", "hostname", "must be a string"),
        ("bogus = 1", "bogus", "unknown setting"),
        ("[limits]\nmax_message_size = 10", "limits.max_message_size", ">= 1024"),
        ("[limits]\nmax_recipients = true", "limits.max_recipients", "integer"),
        ('[listeners]\nsmtp = ["127.0.0.1"]', "listeners.smtp", "address:port"),
        ('[listeners]\nsmtp = ["127.0.0.1:99999"]', "listeners.smtp", "out of range"),
        ('[listeners]\nsmtp = ["mail.example:25"]', "listeners.smtp", "not an IP address"),
        ('[listeners]\nsmtp = ["127.0.0.1:x"]', "listeners.smtp", "not a port number"),
        ('[listeners]\nimap = ["127.0.0.1:25"]', "listeners.", "already used"),
        ("[listeners]\nfoo = []", "listeners.foo", "unknown listener"),
        ("listeners = 3", "listeners", "must be a table"),
        ("[[smarthost]]\nport = 25", "smarthost[0].host", "is required"),
        ('[[smarthost]]\nhost = "a"\ntls = "ssl"', "smarthost[0].tls", "starttls"),
        ('[dkim]\nselector = "a b"', "dkim.selector", "not a valid selector"),
        ('[dkim]\nalgorithm = "dsa"', "dkim.algorithm", "rsa"),
        ("dev = 1", "dev", "true or false"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        load_text(tmp_path, text)
    assert err.value.key.startswith(key)
    assert fragment in str(err.value)
    assert str(err.value).startswith(err.value.key)


def test_ipv6_listener_and_smarthost(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        '[listeners]\nsmtp = ["[::1]:2525", "127.0.0.1:2526"]\n'
        '[[smarthost]]\nhost = "smtp.relay.example"\nport = 465\ntls = "tls"\n'
        'username = "u"\npassword_file = "relay.pw"\ndomains = ["Gmail.com."]\n',
    )
    assert cfg.listeners.smtp == (config.Listen("::1", 2525), config.Listen("127.0.0.1", 2526))
    assert str(cfg.listeners.smtp[0]) == "[::1]:2525"
    (relay,) = cfg.smarthosts
    assert relay.tls == "tls"
    assert relay.port == 465
    assert relay.password_file == tmp_path / "relay.pw"
    assert relay.domains == ("gmail.com",)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        load_text(tmp_path, "hostname = ")
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load(tmp_path / "missing.toml")


def test_save_is_atomic_and_refuses_invalid(tmp_path: Path) -> None:
    path = tmp_path / "pillarbox.toml"
    config.save(path, config.dev_config_text())
    before = path.read_text()
    with pytest.raises(config.ConfigError):
        config.save(path, "[limits]\nmax_message_size = -1\n")
    assert path.read_text() == before
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    config.save(path, before.replace("mail.pillarbox.test", "mx.example.org"))
    assert config.load(path).hostname == "mx.example.org"


def test_harness_config_uses_distinct_free_ports(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, limits={"max_recipients": 7}))
    ports = [getattr(cfg.listeners, n)[0].port for n in config.DEV_PORTS]
    assert len(set(ports)) == len(ports)
    assert all(p not in config.DEV_PORTS.values() for p in ports)
    assert cfg.limits.max_recipients == 7
