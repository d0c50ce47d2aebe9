"""First boot, Python half: appliance config, certificate, optional seed file.

Run by first-boot.sh as root with the appliance's own interpreter
(/opt/pillarbox/bin/python), so the config is validated and written by
``appliance.config`` exactly as the wizard will later write it.

The seed file (``pillarbox-seed.toml``) provisions a box without a browser; it is read
only when first-boot.sh found one::

    hostname = "pillarbox"                # system host name; mDNS: pillarbox.local
    mail_hostname = "mail.example.org"    # `hostname` in pillarbox.toml
    domains = ["example.org"]
    ssh_authorized_keys = ["ssh-ed25519 AAAA... admin@laptop"]   # for root

    [[users]]
    email = "alice@example.org"
    password = "correct horse battery staple"
    admin = true

    [wifi]                                # Raspberry Pi Zero 2 W has no Ethernet
    ssid = "home"
    psk = "secret"
    country = "DE"
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import config
from appliance.accounts import AccountError, Accounts, AlreadyExists
from appliance.tls import generate_self_signed
from appliance.webmail import WEBMAIL_MIN_RAM, ram_allows_webmail

DEFAULT_MAIL_HOSTNAME = "pillarbox.local"
DATA_DIR = Path("/var/lib/pillarbox")
# The wizard is announced as http://pillarbox.local/ (avahi), so plain HTTP on port 80.
WIZARD_PORT = 80
WPA_CONF = Path("/etc/wpa_supplicant/wpa_supplicant-wlan0.conf")
ROOT_KEYS = Path("/root/.ssh/authorized_keys")


class SeedError(ValueError):
    """A seed file that cannot be applied; the message names the key."""


@dataclass(frozen=True)
class SeedUser:
    email: str
    password: str
    admin: bool = False


@dataclass(frozen=True)
class Wifi:
    ssid: str
    psk: str
    country: str = "US"


@dataclass(frozen=True)
class Seed:
    hostname: str = ""
    mail_hostname: str = ""
    domains: tuple[str, ...] = ()
    users: tuple[SeedUser, ...] = ()
    ssh_authorized_keys: tuple[str, ...] = ()
    wifi: Wifi | None = None


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SeedError(f"{key}: must be a list of strings")
    return tuple(value)


def _string(raw: Mapping[str, Any], key: str, default: str = "") -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise SeedError(f"{key}: must be a string")
    return value


def parse_seed(text: str) -> Seed:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SeedError(f"not valid TOML ({exc})") from None
    known = {"hostname", "mail_hostname", "domains", "users", "ssh_authorized_keys", "wifi"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SeedError(f"{unknown[0]}: unknown seed setting")
    hostname = _string(raw, "hostname")
    if hostname and (len(hostname) > 63 or not all(c.isalnum() or c == "-" for c in hostname)):
        raise SeedError(f"hostname: {hostname!r} must be one DNS label")
    users_raw = raw.get("users", [])
    if not isinstance(users_raw, list) or not all(isinstance(u, dict) for u in users_raw):
        raise SeedError("users: must be an array of tables")
    users = []
    for i, entry in enumerate(users_raw):
        email, password = _string(entry, "email"), _string(entry, "password")
        if not email or not password:
            raise SeedError(f"users[{i}]: email and password are required")
        admin = entry.get("admin", False)
        if not isinstance(admin, bool):
            raise SeedError(f"users[{i}].admin: must be true or false")
        users.append(SeedUser(email, password, admin))
    wifi = None
    wifi_raw = raw.get("wifi")
    if wifi_raw is not None:
        if not isinstance(wifi_raw, dict):
            raise SeedError("wifi: must be a table")
        ssid, psk = _string(wifi_raw, "ssid"), _string(wifi_raw, "psk")
        country = _string(wifi_raw, "country", "US").upper()
        if not ssid or not 8 <= len(psk) <= 63 or len(country) != 2:
            raise SeedError("wifi: needs ssid, a psk of 8..63 characters, a 2-letter country")
        wifi = Wifi(ssid, psk, country)
    return Seed(
        hostname=hostname,
        mail_hostname=_string(raw, "mail_hostname"),
        domains=_strings(raw, "domains"),
        users=tuple(users),
        ssh_authorized_keys=_strings(raw, "ssh_authorized_keys"),
        wifi=wifi,
    )


def appliance_config_text(mail_hostname: str, webmail: bool | None = None) -> str:
    """pillarbox.toml for the box: standard ports on all addresses, wizard on port 80;
    webmail on when the box has the memory for it (``webmail`` None: measured here)."""
    webmail_on = ram_allows_webmail() if webmail is None else webmail
    gib = WEBMAIL_MIN_RAM / (1 << 30)
    ports = {**config.APPLIANCE_PORTS, "web": WIZARD_PORT}
    listeners = "\n".join(f'{name} = ["0.0.0.0:{port}"]' for name, port in ports.items())
    return f"""# Pillarbox appliance config, written on first boot. The setup wizard edits it;
# `pillarbox config check` validates it and `pillarbox reload` applies it.
hostname = "{mail_hostname}"
data_dir = "{DATA_DIR}"
# mail_dir defaults to data_dir/mail: the attached mail disk is mounted there
# (root helper disk.mount + fstab; firmware-hooks/disk-attach.sh on hot-plug).

[listeners]
{listeners}

[tls]
cert = "{DATA_DIR / "tls" / "cert.pem"}"
key = "{DATA_DIR / "tls" / "key.pem"}"
self_signed = true

[webmail]
# hardware sizing: on with {gib:.0f} GB of memory or more; the dashboard switches it
enabled = {"true" if webmail_on else "false"}
"""


def write_config(path: Path, seed: Seed) -> config.Config:
    """Write the defaults unless a config already exists (a re-run keeps the wizard's edits)."""
    if not path.exists():
        config.save(path, appliance_config_text(seed.mail_hostname or DEFAULT_MAIL_HOSTNAME))
        print(f"pillarbox-firstboot: wrote {path}")
    return config.load(path)


def ensure_certificate(cfg: config.Config) -> None:
    if not (cfg.tls.cert.exists() and cfg.tls.key.exists()):
        generate_self_signed(cfg.tls.cert, cfg.tls.key, cfg.hostname)
        print(f"pillarbox-firstboot: self-signed certificate for {cfg.hostname}")
    # The daemon and the web UI (group pillarbox) both serve TLS with this key.
    os.chmod(cfg.tls.key, 0o640)


def apply_accounts(cfg: config.Config, seed: Seed) -> None:
    accounts = Accounts(cfg.accounts_db)
    try:
        for domain in seed.domains:
            with contextlib.suppress(AlreadyExists):
                accounts.add_domain(domain)
        for user in seed.users:
            try:
                accounts.add_user(user.email, user.password, is_admin=user.admin)
                print(f"pillarbox-firstboot: created user {user.email}")
            except AlreadyExists:
                pass
    finally:
        accounts.close()


def apply_ssh_keys(keys: Sequence[str]) -> None:
    if not keys:
        return
    ROOT_KEYS.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = ROOT_KEYS.read_text().splitlines() if ROOT_KEYS.exists() else []
    lines = existing + [k for k in keys if k not in existing]
    ROOT_KEYS.write_text("\n".join(lines) + "\n")
    os.chmod(ROOT_KEYS, 0o600)


def _wpa_quote(text: str) -> str:
    if '"' in text or "\n" in text:
        raise SeedError("wifi: ssid and psk must not contain quotes or newlines")
    return f'"{text}"'


def apply_wifi(wifi: Wifi | None) -> None:
    if wifi is None:
        return
    WPA_CONF.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(WPA_CONF, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(
            "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev\n"
            f"country={wifi.country}\n"
            "network={\n"
            f"    ssid={_wpa_quote(wifi.ssid)}\n"
            f"    psk={_wpa_quote(wifi.psk)}\n"
            "}\n"
        )
    subprocess.run(
        ["systemctl", "enable", "--now", "--no-block", "wpa_supplicant@wlan0"], check=False
    )
    print(f"pillarbox-firstboot: Wi-Fi configured for {wifi.ssid!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, default=Path("/etc/pillarbox/pillarbox.toml"))
    parser.add_argument("--seed", type=Path, help="pillarbox-seed.toml to apply")
    parser.add_argument(
        "--print-hostname", action="store_true", help="print the seed's host name and exit"
    )
    args = parser.parse_args(argv)
    try:
        seed = parse_seed(args.seed.read_text(encoding="utf-8")) if args.seed else Seed()
        if args.print_hostname:
            print(seed.hostname)
            return 0
        cfg = write_config(args.config, seed)
        ensure_certificate(cfg)
        apply_accounts(cfg, seed)
        apply_ssh_keys(seed.ssh_authorized_keys)
        apply_wifi(seed.wifi)
    except (SeedError, config.ConfigError, AccountError, OSError) as exc:
        print(f"pillarbox-firstboot: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
