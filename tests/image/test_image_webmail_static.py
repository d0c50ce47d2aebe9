"""Webmail in the image, checked from the sources without building or booting (make test).

The package list build.sh hands to mmdebstrap, the debconf preseed, the units customize.sh
enables, and pillarbox-webmail.service against sysusers.conf and tmpfiles.conf: every
user, group and writable path a unit names must be declared, with the owner it needs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from appliance import config

REPO = Path(__file__).resolve().parents[2]
HOOKS = REPO / "firmware-hooks"
UNITS = HOOKS / "systemd"
WEBMAIL_UNIT = UNITS / "pillarbox-webmail.service"
CONFIG = "/etc/pillarbox/pillarbox.toml"
WEBMAIL_DATA = "/var/lib/pillarbox/webmail"
WEBMAIL_PACKAGES = {
    "php8.2-fpm",
    "php8.2-sqlite3",
    "php8.2-intl",
    "php8.2-mbstring",
    "php8.2-xml",
    "php8.2-zip",
    "php-net-sieve",
    "roundcube-core",
    "roundcube-sqlite3",
    "roundcube-plugins",
}


def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) in file order; systemd allows a key more than once."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {raw!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def service(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for section, key, value in unit_entries(path):
        if section == "Service":
            out.setdefault(key, []).append(value)
    return out


def sysusers() -> tuple[set[str], set[str], set[tuple[str, str]]]:
    """Users, groups and (user, group) memberships declared in sysusers.conf."""
    users: set[str] = set()
    groups: set[str] = set()
    members: set[tuple[str, str]] = set()
    for line in (HOOKS / "conf" / "sysusers.conf").read_text().splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        kind, name = fields[0], fields[1]
        if kind == "u":
            users.add(name)
            primary = fields[2].split(":")[1] if ":" in fields[2] else name
            groups.add(primary)
        elif kind == "g":
            groups.add(name)
        elif kind == "m":
            members.add((name, fields[2]))
    return users, groups, members


def tmpfiles_dirs() -> dict[str, tuple[str, str, str]]:
    """Directory path -> (mode, user, group) from tmpfiles.conf."""
    dirs: dict[str, tuple[str, str, str]] = {}
    for line in (HOOKS / "conf" / "tmpfiles.conf").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in {"d", "D"}:
            dirs[fields[1]] = (fields[2], fields[3], fields[4])
    return dirs


def image_packages(arch: str) -> list[str]:
    """What build.sh's packages() hands to mmdebstrap --include, run by bash itself."""
    script = REPO / "image" / "build.sh"
    body = re.search(r"^packages\(\) \{\n.*?^\}\n", script.read_text(), re.M | re.S)
    assert body, "no packages() function in image/build.sh"
    proc = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\nARCH={arch}\n{body.group(0)}\npackages"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout.strip().split(",")


def enabled_units() -> set[str]:
    text = (REPO / "image" / "customize.sh").read_text().replace("\\\n", " ")
    enabled: set[str] = set()
    for found in re.finditer(r"in_root systemctl enable ([^\n]+)", text):
        enabled.update(found.group(1).split())
    return enabled


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_image_installs_the_webmail_packages(arch: str) -> None:
    packages = image_packages(arch)
    assert set(packages) >= WEBMAIL_PACKAGES, WEBMAIL_PACKAGES - set(packages)
    assert len(packages) == len(set(packages)), "a package is listed twice"
    assert all(packages), "an empty name in the package list"
    # Recommends stay off: each extension above must be named, not pulled in by chance.
    assert 'APT::Install-Recommends "false"' in (REPO / "image" / "build.sh").read_text()


def test_roundcube_database_is_not_made_by_the_package() -> None:
    build = (REPO / "image" / "build.sh").read_text()
    assert "'roundcube-core roundcube/dbconfig-install boolean false'" in build
    assert "debconf-set-selections" in build
    # The preseed must be in place before the packages are installed: an essential hook.
    assert '--essential-hook="$preseed"' in build


def test_customize_enables_webmail_and_disables_debians_fpm() -> None:
    enabled = enabled_units()
    assert "pillarbox-webmail.service" in enabled
    assert not any(u.startswith("php") for u in enabled)
    customize = (REPO / "image" / "customize.sh").read_text()
    assert "in_root systemctl disable php8.2-fpm.service" in customize
    # Every unit of ours with an [Install] section is enabled in the image.
    installable = {
        unit.name
        for unit in UNITS.iterdir()
        if any(section == "Install" for section, _, _ in unit_entries(unit))
    }
    assert installable <= enabled, installable - enabled


def test_webmail_unit_runs_the_serve_command_when_enabled() -> None:
    svc = service(WEBMAIL_UNIT)
    assert svc["ExecCondition"] == [
        f"/opt/pillarbox/bin/python -m appliance.webmail enabled --config {CONFIG}"
    ]
    assert svc["ExecStart"] == [
        f"/opt/pillarbox/bin/python -m appliance.webmail serve --config {CONFIG}"
    ]
    assert svc["Restart"] == ["on-failure"]
    # Active means php-fpm listens: the web UI's first request finds the socket.
    assert svc["Type"] == ["notify"]
    assert svc["RuntimeDirectory"] == ["pillarbox-webmail"]
    assert svc["RuntimeDirectoryMode"] == ["0750"]


def test_webmail_unit_is_confined() -> None:
    svc = service(WEBMAIL_UNIT)
    assert svc["User"] == ["pillarbox-webmail"]
    assert svc["Group"] == ["pillarbox-webmail"]
    assert svc["NoNewPrivileges"] == ["yes"]
    assert svc["ProtectSystem"] == ["strict"]
    # No capabilities at all: the socket is a file, nothing binds a low port.
    assert svc["CapabilityBoundingSet"] == [""]
    assert svc["AmbientCapabilities"] == [""]
    assert svc["ReadWritePaths"] == [WEBMAIL_DATA]
    # Only its own directory of the data dir is visible (no accounts, keys, ctl socket).
    assert svc["TemporaryFileSystem"] == ["/var/lib/pillarbox:ro"]
    assert svc["BindPaths"] == [WEBMAIL_DATA]
    web = service(UNITS / "pillarbox-web.service")
    # The same sandbox as the web UI, option for option, apart from what differs on purpose.
    own = {"AmbientCapabilities", "CapabilityBoundingSet", "ReadWritePaths"}
    hardening = {
        key: value
        for key, value in web.items()
        if key.startswith(("Protect", "Restrict", "Private", "System", "Lock")) and key not in own
    }
    assert hardening, "pillarbox-web.service lost its sandbox options"
    for key, value in hardening.items():
        if key == "RestrictAddressFamilies":
            # php-fpm needs no netlink: a subset of the web UI's families.
            assert set(svc[key][0].split()) <= set(value[0].split())
        else:
            assert svc.get(key) == value, key


def test_units_name_declared_users_and_groups() -> None:
    users, groups, members = sysusers()
    for unit in UNITS.glob("*.service"):
        svc = service(unit)
        for user in svc.get("User", []):
            assert user in users, f"{unit.name}: User={user} is not in sysusers.conf"
        for group in svc.get("Group", []) + " ".join(svc.get("SupplementaryGroups", [])).split():
            assert group in groups, f"{unit.name}: group {group} is not in sysusers.conf"
    assert ("pillarbox-web", "pillarbox-webmail") in members, "the web UI cannot reach fpm.sock"
    # The webmail user must not reach the root helper socket (root:pillarbox-web 0660).
    assert not any(user == "pillarbox-webmail" for user, _ in members)
    socket = dict((k, v) for _, k, v in unit_entries(UNITS / "pillarbox-root-helper.socket"))
    assert socket["SocketGroup"] == "pillarbox-web"


def test_writable_paths_are_made_with_the_right_owner() -> None:
    dirs = tmpfiles_dirs()
    users, groups, _ = sysusers()
    for path, (_, user, group) in dirs.items():
        assert user in users | {"root"}, f"tmpfiles.conf: {path} owner {user} undeclared"
        assert group in groups | {"root"}, f"tmpfiles.conf: {path} group {group} undeclared"
    assert dirs[WEBMAIL_DATA] == ("0750", "pillarbox-webmail", "pillarbox-webmail")
    for unit in UNITS.glob("*.service"):
        svc = service(unit)
        for path in " ".join(svc.get("ReadWritePaths", [])).split():
            assert path in dirs, f"{unit.name}: ReadWritePaths={path} not in tmpfiles.conf"
    # First boot hands the data dir to the daemon recursively; the webmail directory goes
    # back to its owner afterwards, before the webmail unit first starts.
    first_boot = (HOOKS / "first-boot.sh").read_text()
    chown_all = first_boot.index('chown -R pillarbox:pillarbox "$STATE"')
    chown_webmail = first_boot.index('chown pillarbox-webmail:pillarbox-webmail "$STATE/webmail"')
    assert chown_webmail > chown_all
    webmail_after = " ".join(v for _, k, v in unit_entries(WEBMAIL_UNIT) if k == "After")
    assert "pillarbox-firstboot.service" in webmail_after.split()


def test_unit_paths_match_the_config_defaults() -> None:
    """The socket the web UI dials and the data dir Roundcube writes are the unit's own."""
    svc = service(WEBMAIL_UNIT)
    defaults = config.Webmail()
    assert defaults.fpm_socket.parent == Path("/run") / svc["RuntimeDirectory"][0]
    assert str(defaults.data) == WEBMAIL_DATA
