"""pillarbox.toml -> frozen dataclasses.

The file is the desired state of the box. The wizard writes it through :func:`save`
(appliance.atomicfile: temporary file, fsync, rename, fsync of the directory), the
daemon reads it with :func:`load`. The dataclasses below drive the reading
(appliance.configfields): a field's type, its default (stated once, here) and its rule
(bounds, dev default, checks). Every validation error names the offending key, e.g.
``limits.max_message_size: must be an integer >= 1024``; every table refuses a key it
does not know (``limits.max_mesage_size: unknown setting in [limits]; did you mean
max_message_size?``).

Relative paths are resolved against the directory holding the config file, so the dev
config under ./var and the appliance config in /etc/pillarbox behave the same way.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from appliance import atomicfile
from appliance.configfields import ConfigError as ConfigError  # raised by load(), loads()
from appliance.configfields import (
    Reading,
    Rule,
    file_name,
    read_fields,
    read_section,
    read_value,
    refuse_unknown,
    rule,
)

DEV_PORTS: dict[str, int] = {
    "smtp": 2525,
    "submission": 2587,
    "submissions": 2465,
    "imap": 2143,
    "imaps": 2993,
    "pop3": 2110,
    "pop3s": 2995,
    "managesieve": 14190,
    "web": 8080,
    "webs": 8443,
}
APPLIANCE_PORTS: dict[str, int] = {
    "smtp": 25,
    "submission": 587,
    "submissions": 465,
    "imap": 143,
    "imaps": 993,
    "pop3": 110,
    "pop3s": 995,
    "managesieve": 4190,  # RFC 5804 (STARTTLS)
    "web": 80,  # plain HTTP: the LAN wizard (http://pillarbox.local) and ACME HTTP-01
    "webs": 443,  # HTTPS with the box's certificate (and the MTA-STS policy host)
}

TlsMode = Literal["starttls", "tls", "none"]


# ---------------------------------------------------------------- values of their own shape


def _names(
    value: Any, key: str, what: str, normalize: Callable[[str], str], nonempty: bool = False
) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and (v or not nonempty) for v in value
    ):
        raise ConfigError(key, f"must be a list of {what}")
    return tuple(normalize(v) for v in value)


def _domains(value: Any, key: str) -> tuple[str, ...]:
    return _names(value, key, "domain names", lambda d: d.lower().rstrip("."))


def _dns_zones(value: Any, key: str) -> tuple[str, ...]:
    return _names(value, key, "DNS zone names", lambda z: z.lower().strip("."), nonempty=True)


def _selector_problem(value: str) -> str | None:
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        return f"{value!r} is not a valid selector"
    return None


def _hh_mm(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, "must be a string")
    hh, sep, mm = value.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise ConfigError(key, f"{value!r} is not HH:MM")
    return f"{int(hh):02d}:{int(mm):02d}"


def _identity(value: object, key: str, wildcard: bool) -> str:
    """A lower-cased ``local@domain`` (IDNA domain), or ``*@domain`` when ``wildcard``."""
    if not isinstance(value, str):
        raise ConfigError(key, "must be an email address string")
    local, at, domain = value.strip().rpartition("@")
    ok = bool(at and local and domain) and not any(c.isspace() or c in "<>,;:\"'" for c in value)
    if ok and local == "*" and not wildcard:
        ok = False
    try:
        domain = domain.rstrip(".").lower().encode("idna").decode("ascii")
    except UnicodeError:
        ok = False
    if not ok or "." not in domain:
        allowed = "an address or '*@domain'" if wildcard else "an address"
        raise ConfigError(key, f"{value!r} is not {allowed}")
    return f"{local.lower()}@{domain}"


def _extra_identities(value: Any, key: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, "must be a table")
    pairs: list[tuple[str, tuple[str, ...]]] = []
    for user, patterns in value.items():
        user_key = f"{key}.{user}"
        if not isinstance(patterns, list):
            raise ConfigError(user_key, "must be a list of addresses or '*@domain'")
        who = _identity(user, user_key, False)
        if any(who == seen for seen, _ in pairs):
            raise ConfigError(user_key, "is listed twice")
        pairs.append((who, tuple(_identity(x, user_key, True) for x in patterns)))
    return tuple(pairs)


def _http_url_problem(value: str) -> str | None:
    return None if value.startswith(("http://", "https://")) else f"{value!r} is not an http:// URL"


def _nonempty(value: str) -> str | None:
    return None if value else "must not be empty"


_HTTP_URL = rule(normalize=lambda v: v.rstrip("/"), check=_http_url_problem)


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Listeners:
    smtp: tuple[Listen, ...] = ()
    submission: tuple[Listen, ...] = ()
    submissions: tuple[Listen, ...] = ()
    imap: tuple[Listen, ...] = ()
    imaps: tuple[Listen, ...] = ()
    pop3: tuple[Listen, ...] = ()
    pop3s: tuple[Listen, ...] = ()
    managesieve: tuple[Listen, ...] = ()
    web: tuple[Listen, ...] = ()
    webs: tuple[Listen, ...] = ()


@dataclass(frozen=True)
class Tls:
    cert: Path = field(metadata=rule(under_data_dir="tls/cert.pem"))
    key: Path = field(metadata=rule(under_data_dir="tls/key.pem"))
    # Generate a self-signed certificate when cert/key are missing (first boot, dev).
    self_signed: bool = True


@dataclass(frozen=True)
class Limits:
    max_message_size: int = field(default=50 * 1024 * 1024, metadata=rule(minimum=1024))
    max_recipients: int = field(default=100, metadata=rule(minimum=1))
    max_connections: int = field(default=500, metadata=rule(minimum=1))
    max_connections_per_ip: int = field(default=20, metadata=rule(minimum=1))
    command_timeout: int = field(default=300, metadata=rule(minimum=1))
    imap_idle_timeout: int = field(default=1800, metadata=rule(minimum=60))
    default_quota: int = field(default=0, metadata=rule(minimum=0))  # bytes per user, 0 = unlimited
    # Login throttle (appliance/accounts/throttle.py), keyed on the canonical account:
    # free failures per (account, source IP) and per source IP before the back-off
    # (1 s doubling, at most login_backoff_cap s); past login_account_ceiling failures
    # for one account from anywhere, each attempt waits 1 s doubling per further
    # ceiling, at most login_account_delay_cap s (slowed, never refused).
    login_free_failures: int = field(default=3, metadata=rule(minimum=1))
    login_ip_free_failures: int = field(default=10, metadata=rule(minimum=1))
    login_backoff_cap: int = field(default=300, metadata=rule(minimum=1))
    login_account_ceiling: int = field(default=20, metadata=rule(minimum=1))
    login_account_delay_cap: int = field(default=8, metadata=rule(minimum=0))
    # Bytes kept free on the mail filesystem (appliance/store/reserve.py): below it SMTP
    # answers 452 4.3.1 and APPEND NO [OVERQUOTA]; reads and deletes still work.
    # -1 = max(100 MiB, 1 % of the filesystem); dev default 16 MiB; 0 turns it off.
    disk_reserve: int = field(default=-1, metadata=rule(minimum=-1, dev_default=16 << 20))


@dataclass(frozen=True)
class Smarthost:
    host: str = field(metadata=rule(check=lambda v: None if v else "is required"))
    port: int = field(default=587, metadata=rule(minimum=1))
    tls: TlsMode = "starttls"
    username: str = ""
    password_file: Path | None = None
    # Empty: relay all outbound mail through this host; else only these destination domains.
    domains: tuple[str, ...] = field(default=(), metadata=rule(parse=_domains))


@dataclass(frozen=True)
class Queue:
    max_age: int = field(default=5 * 24 * 3600, metadata=rule(minimum=60))
    delay_warning: int = field(default=4 * 3600, metadata=rule(minimum=0))
    concurrency_per_domain: int = field(default=4, metadata=rule(minimum=1))
    concurrency: int = field(default=20, metadata=rule(minimum=1))


@dataclass(frozen=True)
class Dkim:
    selector: str = field(default="pb1", metadata=rule(check=_selector_problem))
    algorithm: Literal["rsa", "ed25519", "both"] = "both"


BackupTarget = Literal["none", "local", "sftp", "s3"]
BackupSchedule = Literal["daily", "off"]


@dataclass(frozen=True)
class Backup:
    """Where and when restic backs the box up (see appliance.backup)."""

    target: BackupTarget = "none"
    path: Path | None = None  # local: the repository directory (e.g. on a USB disk mount)
    # sftp: "user@host:/srv/pillarbox"; s3: "https://host/bucket/prefix"
    url: str = field(default="", metadata=rule(normalize=str.strip))
    sftp_identity: Path | None = None  # ssh private key for the sftp target
    sftp_port: int = field(default=22, metadata=rule(minimum=1))
    s3_access_key_id: str = ""
    s3_secret_file: Path | None = None  # file holding the S3 secret access key
    schedule: BackupSchedule = "daily"
    time: str = field(default="03:30", metadata=rule(parse=_hh_mm))  # daily run, local time
    keep_daily: int = field(default=7, metadata=rule(minimum=0))
    keep_weekly: int = field(default=4, metadata=rule(minimum=0))
    keep_monthly: int = field(default=12, metadata=rule(minimum=0))
    # Read from the file: always set, by default <data_dir>/backup/repository-password.
    password_file: Path | None = field(
        default=None, metadata=rule(under_data_dir="backup/repository-password")
    )


@dataclass(frozen=True)
class Filters:
    """Inbound checks (appliance.mailauth, appliance.filters). Scores are rspamd scores."""

    mailauth: bool = True  # SPF, DKIM, DMARC, ARC + Authentication-Results
    dmarc_enforce: bool = True  # honour p=reject (550) and p=quarantine (Junk)
    dns_timeout: int = field(default=5, metadata=rule(minimum=1))  # seconds per DNS query
    dns_tempfail: bool = False  # DMARC undeterminable (DNS down) -> 451 instead of accept
    sieve: bool = True
    rspamd: bool = False
    # normal worker (/checkv2)
    rspamd_url: str = field(default="http://127.0.0.1:11333", metadata=_HTTP_URL)
    # controller (/learnspam, /learnham)
    rspamd_controller_url: str = field(default="http://127.0.0.1:11334", metadata=_HTTP_URL)
    rspamd_password_file: Path | None = None
    spam_header_score: float = 5.0  # add X-Spam: Yes at or above
    spam_junk_score: float = 6.0  # deliver to Junk at or above
    spam_reject_score: float = 15.0  # refuse at SMTP (550 5.7.1) at or above
    # e.g. ["zen.spamhaus.org"]; used when rspamd is off
    dnsbl: tuple[str, ...] = field(default=(), metadata=rule(parse=_dns_zones))
    dnsbl_action: Literal["reject", "junk"] = "reject"
    greylist: bool = False  # used when rspamd is off
    greylist_delay: int = field(default=300, metadata=rule(minimum=0))
    greylist_retry_window: int = field(default=2 * 24 * 3600, metadata=rule(minimum=60))
    greylist_whitelist_days: int = field(default=36, metadata=rule(minimum=1))
    clamav: bool = False
    # a Unix socket path or "host:port"
    clamd_socket: str = field(default="/run/clamav/clamd.ctl", metadata=rule(check=_nonempty))
    clamav_tempfail: bool = True  # clamd unreachable -> 451 (false: accept unscanned)


@dataclass(frozen=True)
class Smtp:
    """SMTP listener policy (appliance.smtp)."""

    # Port 25 only: seconds to wait before the 220 banner; a client that talks before it
    # is refused (554) and dropped. 0 turns the check off. Default 1.0, 0 in dev mode.
    greet_wait: float = field(
        default=1.0, metadata=rule(minimum=0, maximum=30, unit="seconds", dev_default=0.0)
    )
    # Submission: header From/Sender identities granted beyond a user's own addresses,
    # as (user, (address or "*@domain", ...)) pairs; written in the file as
    # [smtp.extra_identities] "alice@example.org" = ["boss@example.org", "*@example.net"]
    extra_identities: tuple[tuple[str, tuple[str, ...]], ...] = field(
        default=(), metadata=rule(parse=_extra_identities)
    )

    def identities_for(self, user: str) -> tuple[str, ...]:
        key = user.lower()
        return next((grants for who, grants in self.extra_identities if who == key), ())


def _alert_address(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, "must be a string")
    return _identity(value, key, False) if value.strip() else ""


@dataclass(frozen=True)
class Alerts:
    """Where the box's alert mail goes (webui.alerts)."""

    # "" = the first admin account's address
    email: str = field(default="", metadata=rule(parse=_alert_address))


@dataclass(frozen=True)
class Webmail:
    """Roundcube served at /mail/ by the web front through php-fpm (appliance.webmail)."""

    # Off by default; hardware sizing turns it on when the RAM allows (webui.sizing).
    enabled: bool = False
    # php-fpm's FastCGI socket: the web front connects, php-fpm listens (mode 0660).
    fpm_socket: Path = field(
        default=Path("/run/pillarbox-webmail/fpm.sock"),
        metadata=rule(dev_under_data_dir="run/webmail-fpm.sock"),
    )
    # Roundcube's config, database, temp files and logs
    data: Path = field(
        default=Path("/var/lib/pillarbox/webmail"), metadata=rule(under_data_dir="webmail")
    )
    # php-fpm children (one per concurrent PHP request); 0 = sized by RAM (appliance.webmail.fpm).
    max_children: int = field(default=0, metadata=rule(minimum=0, maximum=64))
    # Largest request body (an attachment upload) in MiB.
    max_upload_mib: int = field(default=25, metadata=rule(minimum=1, maximum=100))
    # Seconds the web front waits for php-fpm's answer to start and between blocks.
    request_timeout: int = field(default=120, metadata=rule(minimum=5, maximum=600))


@dataclass(frozen=True)
class ManageSieve:
    """Per-user Sieve script quota, enforced by ManageSieve (appliance.managesieve)."""

    # RFC 5804 QUOTA/MAXSIZE; the Sieve parser reads at most 64 KiB (sieve_parse).
    max_script_size: int = field(
        default=64 * 1024, metadata=rule(minimum=1024, maximum=64 * 1024, unit="bytes")
    )
    max_scripts: int = field(default=20, metadata=rule(minimum=1, maximum=1000))  # MAXSCRIPTS


@dataclass(frozen=True)
class Config:
    hostname: str
    data_dir: Path
    mail_dir: Path = field(metadata=rule(under_data_dir="mail"))
    ctl_socket: Path = field(metadata=rule(under_data_dir="run/ctl.sock"))
    listeners: Listeners
    tls: Tls
    limits: Limits = field(default_factory=Limits)
    queue: Queue = field(default_factory=Queue)
    dkim: Dkim = field(default_factory=Dkim)
    smarthosts: tuple[Smarthost, ...] = field(default=(), metadata=rule(toml="smarthost"))
    backup: Backup = field(default_factory=Backup)
    filters: Filters = field(default_factory=Filters)
    smtp: Smtp = field(default_factory=Smtp)
    alerts: Alerts = field(default_factory=Alerts)
    webmail: Webmail = field(default_factory=Webmail)
    managesieve: ManageSieve = field(default_factory=ManageSieve)
    dev: bool = False
    source: Path | None = field(default=None, metadata=rule(toml=""))

    @property
    def accounts_db(self) -> Path:
        return self.data_dir / "accounts.sqlite"

    @property
    def queue_dir(self) -> Path:
        return self.data_dir / "queue"

    @property
    def dkim_dir(self) -> Path:
        return self.data_dir / "dkim"


# ---------------------------------------------------------------- tables of their own shape


def parse_listen(value: str, key: str) -> Listen:
    """'127.0.0.1:25', '[::1]:25', ':25' (all addresses) -> Listen."""
    text = value.strip()
    if text.startswith("["):
        host, sep, port_s = text[1:].partition("]:")
        if not sep:
            raise ConfigError(key, f"{value!r} is not [address]:port")
    else:
        host, sep, port_s = text.rpartition(":")
        if not sep:
            raise ConfigError(key, f"{value!r} is not address:port")
    host = host or "0.0.0.0"
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(key, f"{host!r} is not an IP address") from None
    try:
        port = int(port_s)
    except ValueError:
        raise ConfigError(key, f"{port_s!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(key, f"port {port} is out of range")
    return Listen(host, port)


def _listeners(raw: Mapping[str, Any], dev: bool) -> Listeners:
    table = raw.get("listeners", {})
    if not isinstance(table, Mapping):
        raise ConfigError("listeners", "must be a table")
    names = [f.name for f in dataclasses.fields(Listeners)]
    refuse_unknown(table, names, "listeners.", "[listeners]", "listener")
    ports = DEV_PORTS if dev else APPLIANCE_PORTS
    host = "127.0.0.1" if dev else "0.0.0.0"
    values: dict[str, tuple[Listen, ...]] = {}
    for name, port in ports.items():
        key = f"listeners.{name}"
        entry = table.get(name, [f"{host}:{port}"])
        if isinstance(entry, str):
            entry = [entry]
        if not isinstance(entry, list) or not all(isinstance(e, str) for e in entry):
            raise ConfigError(key, "must be a list of 'address:port' strings")
        values[name] = tuple(parse_listen(e, key) for e in entry)
    seen: list[tuple[Listen, str]] = []
    wildcard = {"0.0.0.0", "::"}
    for name, addrs in values.items():
        for a in addrs:
            for other, other_name in seen:
                same_host = a.host == other.host or {a.host, other.host} & wildcard
                if a.port and a.port == other.port and same_host:
                    raise ConfigError(
                        f"listeners.{name}", f"{a} is already used by listeners.{other_name}"
                    )
            seen.append((a, name))
    return Listeners(**values)


def _hostname(value: str) -> str:
    labels = value.rstrip(".").split(".")
    ok = 0 < len(value) <= 253 and all(
        0 < len(lab) <= 63
        and lab[0] != "-"
        and lab[-1] != "-"
        and all(c.isalnum() or c == "-" for c in lab)
        for lab in labels
    )
    if not ok or not value.isascii():
        raise ConfigError("hostname", f"{value!r} is not a valid host name")
    return value.rstrip(".").lower()


def _smarthosts(raw: Mapping[str, Any], reading: Reading) -> tuple[Smarthost, ...]:
    entries = raw.get("smarthost", [])
    if isinstance(entries, Mapping):
        entries = [entries]
    if not isinstance(entries, list):
        raise ConfigError("smarthost", "must be a table or an array of tables")
    result = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"smarthost[{i}]", "must be a table")
        result.append(read_section(Smarthost, entry, f"smarthost[{i}].", "[[smarthost]]", reading))
    return tuple(result)


def _check_backup(b: Backup, p: str) -> None:
    url = b.url
    if b.target == "local" and b.path is None:
        raise ConfigError(p + "path", "is required for a local target")
    if b.target in ("sftp", "s3") and not url:
        raise ConfigError(p + "url", f"is required for an {b.target} target")
    if b.target == "sftp" and (":" not in url or url.startswith(("-", "/"))):
        raise ConfigError(p + "url", f"{url!r} is not user@host:/path")
    if b.target == "s3" and not url.startswith(("https://", "http://")):
        raise ConfigError(p + "url", f"{url!r} is not https://host/bucket[/prefix]")
    if b.target == "s3" and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise ConfigError(p + "url", "must not hold credentials (use s3_secret_file)")
    if b.target == "s3" and not (b.s3_access_key_id and b.s3_secret_file):
        raise ConfigError(p + "s3_access_key_id", "and backup.s3_secret_file are required for s3")


def _check_filters(f: Filters, p: str) -> None:
    if not f.spam_header_score <= f.spam_junk_score <= f.spam_reject_score:
        raise ConfigError(p + "spam_junk_score", "scores must rise: header <= junk <= reject")


_SECTION_CHECKS: dict[type, Callable[[Any, str], None]] = {
    Backup: _check_backup,
    Filters: _check_filters,
}


def from_mapping(raw: Mapping[str, Any], base: Path, source: Path | None = None) -> Config:
    """Validate a parsed TOML document. ``base`` resolves relative paths."""
    refuse_unknown(raw, [n for f in dataclasses.fields(Config) if (n := file_name(f))], "", "")
    start = Reading(base, False, base)
    dev = read_value(raw.get("dev", False), bool, Rule(), "dev", start)
    hostname = _hostname(
        read_value(raw.get("hostname", "localhost"), str, Rule(), "hostname", start)
    )
    data_dir = read_value(
        raw.get("data_dir", "var" if dev else "/var/lib/pillarbox"), Path, Rule(), "data_dir", start
    )
    reading = Reading(base, dev, data_dir, _SECTION_CHECKS)
    known = {
        "hostname": hostname,
        "data_dir": data_dir,
        "dev": dev,
        "listeners": _listeners(raw, dev),
        "smarthosts": _smarthosts(raw, reading),
        "source": source,
    }
    return Config(**read_fields(Config, raw, "", reading, known))


def load(path: Path) -> Config:
    """Read and validate ``path``; raises :class:`ConfigError` with the key at fault."""
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("", f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path}: not valid TOML ({exc})") from None
    return from_mapping(raw, path.resolve().parent, source=path.resolve())


def loads(text: str, base: Path) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"not valid TOML ({exc})") from None
    return from_mapping(raw, base)


def save(path: Path, text: str) -> None:
    """Validate ``text`` and write it atomically: tmp file, fsync, rename, fsync dir.

    Invalid text raises :class:`ConfigError` and leaves the file on disk untouched.
    """
    loads(text, path.resolve().parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomicfile.write_text(path, text)


def dev_config_text(hostname: str = "mail.pillarbox.test") -> str:
    """The embedded defaults `make run` writes to ./var/pillarbox.toml on first start."""
    listeners = "\n".join(f'{name} = ["127.0.0.1:{port}"]' for name, port in DEV_PORTS.items())
    return f"""# Pillarbox development config (generated by `pillarbox run --dev`).
# Paths are relative to this file's directory.
dev = true
hostname = "{hostname}"
data_dir = "."

[listeners]
{listeners}

[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"
self_signed = true

[limits]
max_message_size = 26214400
max_recipients = 100

[webmail]
enabled = true
"""
