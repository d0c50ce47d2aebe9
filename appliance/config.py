"""pillarbox.toml -> frozen dataclasses.

The file is the desired state of the box. The wizard writes it through :func:`save`
(temporary file, fsync, rename, fsync of the directory), the daemon reads it with
:func:`load`. Every validation error names the offending key, e.g.
``limits.max_message_size: must be an integer >= 1024``.

Relative paths are resolved against the directory holding the config file, so the dev
config under ./var and the appliance config in /etc/pillarbox behave the same way.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from appliance import atomicfile

DEV_PORTS: dict[str, int] = {
    "smtp": 2525,
    "submission": 2587,
    "submissions": 2465,
    "imap": 2143,
    "imaps": 2993,
    "pop3": 2110,
    "pop3s": 2995,
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
    "web": 80,  # plain HTTP: the LAN wizard (http://pillarbox.local) and ACME HTTP-01
    "webs": 443,  # HTTPS with the box's certificate (and the MTA-STS policy host)
}

TlsMode = Literal["starttls", "tls", "none"]


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


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
    web: tuple[Listen, ...] = ()
    webs: tuple[Listen, ...] = ()


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path
    # Generate a self-signed certificate when cert/key are missing (first boot, dev).
    self_signed: bool = True


@dataclass(frozen=True)
class Limits:
    max_message_size: int = 50 * 1024 * 1024
    max_recipients: int = 100
    max_connections: int = 500
    max_connections_per_ip: int = 20
    command_timeout: int = 300
    imap_idle_timeout: int = 1800
    default_quota: int = 0  # bytes per user, 0 = unlimited
    # Login throttle (appliance/accounts/throttle.py), keyed on the canonical account:
    # free failures per (account, source IP) and per source IP before the back-off
    # (1 s doubling, at most login_backoff_cap s); past login_account_ceiling failures
    # for one account from anywhere, each attempt waits 1 s doubling per further
    # ceiling, at most login_account_delay_cap s (slowed, never refused).
    login_free_failures: int = 3
    login_ip_free_failures: int = 10
    login_backoff_cap: int = 300
    login_account_ceiling: int = 20
    login_account_delay_cap: int = 8
    # Bytes kept free on the mail filesystem (appliance/store/reserve.py): below it SMTP
    # answers 452 4.3.1 and APPEND NO [OVERQUOTA]; reads and deletes still work.
    # -1 = max(100 MiB, 1 % of the filesystem); dev default 16 MiB; 0 turns it off.
    disk_reserve: int = -1


@dataclass(frozen=True)
class Smarthost:
    host: str
    port: int = 587
    tls: TlsMode = "starttls"
    username: str = ""
    password_file: Path | None = None
    # Empty: relay all outbound mail through this host; else only these destination domains.
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class Queue:
    max_age: int = 5 * 24 * 3600
    delay_warning: int = 4 * 3600
    concurrency_per_domain: int = 4
    concurrency: int = 20


@dataclass(frozen=True)
class Dkim:
    selector: str = "pb1"
    algorithm: Literal["rsa", "ed25519", "both"] = "both"


BackupTarget = Literal["none", "local", "sftp", "s3"]
BackupSchedule = Literal["daily", "off"]


@dataclass(frozen=True)
class Backup:
    """Where and when restic backs the box up (see appliance.backup)."""

    target: BackupTarget = "none"
    path: Path | None = None  # local: the repository directory (e.g. on a USB disk mount)
    url: str = ""  # sftp: "user@host:/srv/pillarbox"; s3: "https://host/bucket/prefix"
    sftp_identity: Path | None = None  # ssh private key for the sftp target
    sftp_port: int = 22
    s3_access_key_id: str = ""
    s3_secret_file: Path | None = None  # file holding the S3 secret access key
    schedule: BackupSchedule = "daily"
    time: str = "03:30"  # daily run, local time HH:MM
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12
    password_file: Path | None = None  # default: <data_dir>/backup/repository-password


@dataclass(frozen=True)
class Filters:
    """Inbound checks (appliance.mailauth, appliance.filters). Scores are rspamd scores."""

    mailauth: bool = True  # SPF, DKIM, DMARC, ARC + Authentication-Results
    dmarc_enforce: bool = True  # honour p=reject (550) and p=quarantine (Junk)
    dns_timeout: int = 5  # seconds per DNS query
    dns_tempfail: bool = False  # DMARC undeterminable (DNS down) -> 451 instead of accept
    sieve: bool = True
    rspamd: bool = False
    rspamd_url: str = "http://127.0.0.1:11333"  # normal worker (/checkv2)
    rspamd_controller_url: str = "http://127.0.0.1:11334"  # controller (/learnspam, /learnham)
    rspamd_password_file: Path | None = None
    spam_header_score: float = 5.0  # add X-Spam: Yes at or above
    spam_junk_score: float = 6.0  # deliver to Junk at or above
    spam_reject_score: float = 15.0  # refuse at SMTP (550 5.7.1) at or above
    dnsbl: tuple[str, ...] = ()  # e.g. ["zen.spamhaus.org"]; used when rspamd is off
    dnsbl_action: Literal["reject", "junk"] = "reject"
    greylist: bool = False  # used when rspamd is off
    greylist_delay: int = 300
    greylist_retry_window: int = 2 * 24 * 3600
    greylist_whitelist_days: int = 36
    clamav: bool = False
    clamd_socket: str = "/run/clamav/clamd.ctl"  # a Unix socket path or "host:port"
    clamav_tempfail: bool = True  # clamd unreachable -> 451 (false: accept unscanned)


@dataclass(frozen=True)
class Smtp:
    """SMTP listener policy (appliance.smtp)."""

    # Port 25 only: seconds to wait before the 220 banner; a client that talks before it
    # is refused (554) and dropped. 0 turns the check off. Default 1.0, 0 in dev mode.
    greet_wait: float = 1.0
    # Submission: header From/Sender identities granted beyond a user's own addresses,
    # as (user, (address or "*@domain", ...)) pairs; written in the file as
    # [smtp.extra_identities] "alice@example.org" = ["boss@example.org", "*@example.net"]
    extra_identities: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def identities_for(self, user: str) -> tuple[str, ...]:
        key = user.lower()
        return next((grants for who, grants in self.extra_identities if who == key), ())


@dataclass(frozen=True)
class Config:
    hostname: str
    data_dir: Path
    mail_dir: Path
    ctl_socket: Path
    listeners: Listeners
    tls: Tls
    limits: Limits = field(default_factory=Limits)
    queue: Queue = field(default_factory=Queue)
    dkim: Dkim = field(default_factory=Dkim)
    smarthosts: tuple[Smarthost, ...] = ()
    backup: Backup = field(default_factory=Backup)
    filters: Filters = field(default_factory=Filters)
    smtp: Smtp = field(default_factory=Smtp)
    dev: bool = False
    source: Path | None = None

    @property
    def accounts_db(self) -> Path:
        return self.data_dir / "accounts.sqlite"

    @property
    def queue_dir(self) -> Path:
        return self.data_dir / "queue"

    @property
    def dkim_dir(self) -> Path:
        return self.data_dir / "dkim"


# ---------------------------------------------------------------- parsing helpers


def _table(raw: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(prefix + key, "must be a table")
    return value


def _int(raw: Mapping[str, Any], key: str, default: int, prefix: str, minimum: int = 0) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(prefix + key, f"must be an integer >= {minimum}")
    return value


def _str(raw: Mapping[str, Any], key: str, default: str, prefix: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(prefix + key, "must be a string")
    return value


def _bool(raw: Mapping[str, Any], key: str, default: bool, prefix: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(prefix + key, "must be true or false")
    return value


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


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
    table = _table(raw, "listeners")
    unknown = set(table) - {f.name for f in dataclasses.fields(Listeners)}
    if unknown:
        raise ConfigError("listeners." + sorted(unknown)[0], "unknown listener")
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


def _smarthosts(raw: Mapping[str, Any], base: Path) -> tuple[Smarthost, ...]:
    entries = raw.get("smarthost", [])
    if isinstance(entries, Mapping):
        entries = [entries]
    if not isinstance(entries, list):
        raise ConfigError("smarthost", "must be a table or an array of tables")
    result = []
    for i, entry in enumerate(entries):
        p = f"smarthost[{i}]."
        if not isinstance(entry, Mapping):
            raise ConfigError(f"smarthost[{i}]", "must be a table")
        host = _str(entry, "host", "", p)
        if not host:
            raise ConfigError(p + "host", "is required")
        tls = _str(entry, "tls", "starttls", p)
        if tls not in ("starttls", "tls", "none"):
            raise ConfigError(p + "tls", "must be 'starttls', 'tls' or 'none'")
        pw = _str(entry, "password_file", "", p)
        domains = entry.get("domains", [])
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            raise ConfigError(p + "domains", "must be a list of domain names")
        result.append(
            Smarthost(
                host=host,
                port=_int(entry, "port", 587, p, 1),
                tls=tls,  # type: ignore[arg-type]
                username=_str(entry, "username", "", p),
                password_file=_path(pw, base) if pw else None,
                domains=tuple(d.lower().rstrip(".") for d in domains),
            )
        )
    return tuple(result)


def _backup(raw: Mapping[str, Any], base: Path, data_dir: Path) -> Backup:
    t = _table(raw, "backup")
    p = "backup."
    known = {f.name for f in dataclasses.fields(Backup)}
    unknown = set(t) - known
    if unknown:
        raise ConfigError(p + sorted(unknown)[0], "unknown setting")
    target = _str(t, "target", "none", p)
    if target not in ("none", "local", "sftp", "s3"):
        raise ConfigError(p + "target", "must be 'none', 'local', 'sftp' or 's3'")
    path_s = _str(t, "path", "", p)
    url = _str(t, "url", "", p).strip()
    if target == "local" and not path_s:
        raise ConfigError(p + "path", "is required for a local target")
    if target in ("sftp", "s3") and not url:
        raise ConfigError(p + "url", f"is required for an {target} target")
    if target == "sftp" and (":" not in url or url.startswith(("-", "/"))):
        raise ConfigError(p + "url", f"{url!r} is not user@host:/path")
    if target == "s3" and not url.startswith(("https://", "http://")):
        raise ConfigError(p + "url", f"{url!r} is not https://host/bucket[/prefix]")
    if target == "s3" and "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise ConfigError(p + "url", "must not hold credentials (use s3_secret_file)")
    identity = _str(t, "sftp_identity", "", p)
    secret = _str(t, "s3_secret_file", "", p)
    key_id = _str(t, "s3_access_key_id", "", p)
    if target == "s3" and not (key_id and secret):
        raise ConfigError(p + "s3_access_key_id", "and backup.s3_secret_file are required for s3")
    schedule = _str(t, "schedule", "daily", p)
    if schedule not in ("daily", "off"):
        raise ConfigError(p + "schedule", "must be 'daily' or 'off'")
    at = _str(t, "time", "03:30", p)
    hh, sep, mm = at.partition(":")
    if not (sep and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise ConfigError(p + "time", f"{at!r} is not HH:MM")
    pw = _str(t, "password_file", "", p)
    return Backup(
        target=target,  # type: ignore[arg-type]
        path=_path(path_s, base) if path_s else None,
        url=url,
        sftp_identity=_path(identity, base) if identity else None,
        sftp_port=_int(t, "sftp_port", 22, p, 1),
        s3_access_key_id=key_id,
        s3_secret_file=_path(secret, base) if secret else None,
        schedule=schedule,  # type: ignore[arg-type]
        time=f"{int(hh):02d}:{int(mm):02d}",
        keep_daily=_int(t, "keep_daily", 7, p, 0),
        keep_weekly=_int(t, "keep_weekly", 4, p, 0),
        keep_monthly=_int(t, "keep_monthly", 12, p, 0),
        password_file=_path(pw, base) if pw else data_dir / "backup" / "repository-password",
    )


def _float(raw: Mapping[str, Any], key: str, default: float, prefix: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(prefix + key, "must be a number")
    return float(value)


def _filters(raw: Mapping[str, Any], base: Path) -> Filters:
    t = _table(raw, "filters")
    p = "filters."
    unknown = set(t) - {f.name for f in dataclasses.fields(Filters)}
    if unknown:
        raise ConfigError(p + sorted(unknown)[0], "unknown setting")
    d = Filters()
    urls = {}
    for key in ("rspamd_url", "rspamd_controller_url"):
        urls[key] = _str(t, key, getattr(d, key), p).rstrip("/")
        if not urls[key].startswith(("http://", "https://")):
            raise ConfigError(p + key, f"{urls[key]!r} is not an http:// URL")
    lists = t.get("dnsbl", [])
    if not isinstance(lists, list) or not all(isinstance(z, str) and z for z in lists):
        raise ConfigError(p + "dnsbl", "must be a list of DNS zone names")
    action = _str(t, "dnsbl_action", "reject", p)
    if action not in ("reject", "junk"):
        raise ConfigError(p + "dnsbl_action", "must be 'reject' or 'junk'")
    header = _float(t, "spam_header_score", d.spam_header_score, p)
    junk = _float(t, "spam_junk_score", d.spam_junk_score, p)
    reject = _float(t, "spam_reject_score", d.spam_reject_score, p)
    if not header <= junk <= reject:
        raise ConfigError(p + "spam_junk_score", "scores must rise: header <= junk <= reject")
    socket_s = _str(t, "clamd_socket", d.clamd_socket, p)
    if not socket_s:
        raise ConfigError(p + "clamd_socket", "must not be empty")
    pw = _str(t, "rspamd_password_file", "", p)
    return Filters(
        mailauth=_bool(t, "mailauth", d.mailauth, p),
        dmarc_enforce=_bool(t, "dmarc_enforce", d.dmarc_enforce, p),
        dns_timeout=_int(t, "dns_timeout", d.dns_timeout, p, 1),
        dns_tempfail=_bool(t, "dns_tempfail", d.dns_tempfail, p),
        sieve=_bool(t, "sieve", d.sieve, p),
        rspamd=_bool(t, "rspamd", d.rspamd, p),
        rspamd_url=urls["rspamd_url"],
        rspamd_controller_url=urls["rspamd_controller_url"],
        rspamd_password_file=_path(pw, base) if pw else None,
        spam_header_score=header,
        spam_junk_score=junk,
        spam_reject_score=reject,
        dnsbl=tuple(z.lower().strip(".") for z in lists),
        dnsbl_action=action,  # type: ignore[arg-type]
        greylist=_bool(t, "greylist", d.greylist, p),
        greylist_delay=_int(t, "greylist_delay", d.greylist_delay, p, 0),
        greylist_retry_window=_int(t, "greylist_retry_window", d.greylist_retry_window, p, 60),
        greylist_whitelist_days=_int(t, "greylist_whitelist_days", d.greylist_whitelist_days, p, 1),
        clamav=_bool(t, "clamav", d.clamav, p),
        clamd_socket=socket_s,
        clamav_tempfail=_bool(t, "clamav_tempfail", d.clamav_tempfail, p),
    )


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


def _smtp(raw: Mapping[str, Any], dev: bool) -> Smtp:
    t = _table(raw, "smtp")
    p = "smtp."
    unknown = set(t) - {f.name for f in dataclasses.fields(Smtp)}
    if unknown:
        raise ConfigError(p + sorted(unknown)[0], "unknown setting")
    wait = _float(t, "greet_wait", 0.0 if dev else Smtp.greet_wait, p)
    if not 0 <= wait <= 30:
        raise ConfigError(p + "greet_wait", "must be between 0 and 30 seconds")
    grants = _table(t, "extra_identities", p)
    pairs: list[tuple[str, tuple[str, ...]]] = []
    for user, patterns in grants.items():
        key = f"{p}extra_identities.{user}"
        if not isinstance(patterns, list):
            raise ConfigError(key, "must be a list of addresses or '*@domain'")
        who = _identity(user, key, False)
        if any(who == seen for seen, _ in pairs):
            raise ConfigError(key, "is listed twice")
        pairs.append((who, tuple(_identity(x, key, True) for x in patterns)))
    return Smtp(greet_wait=wait, extra_identities=tuple(pairs))


def from_mapping(raw: Mapping[str, Any], base: Path, source: Path | None = None) -> Config:
    """Validate a parsed TOML document. ``base`` resolves relative paths."""
    known = {
        "hostname",
        "dev",
        "data_dir",
        "mail_dir",
        "ctl_socket",
        "listeners",
        "tls",
        "limits",
        "queue",
        "dkim",
        "smarthost",
        "backup",
        "filters",
        "smtp",
    }
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown setting")
    dev = _bool(raw, "dev", False, "")
    hostname = _hostname(_str(raw, "hostname", "localhost", ""))
    data_dir = _path(_str(raw, "data_dir", "var" if dev else "/var/lib/pillarbox", ""), base)
    mail_dir = _path(_str(raw, "mail_dir", str(data_dir / "mail"), ""), base)
    ctl_socket = _path(_str(raw, "ctl_socket", str(data_dir / "run" / "ctl.sock"), ""), base)

    tls_t = _table(raw, "tls")
    tls = Tls(
        cert=_path(_str(tls_t, "cert", str(data_dir / "tls" / "cert.pem"), "tls."), base),
        key=_path(_str(tls_t, "key", str(data_dir / "tls" / "key.pem"), "tls."), base),
        self_signed=_bool(tls_t, "self_signed", True, "tls."),
    )
    lim_t = _table(raw, "limits")
    limits = Limits(
        max_message_size=_int(lim_t, "max_message_size", Limits.max_message_size, "limits.", 1024),
        max_recipients=_int(lim_t, "max_recipients", Limits.max_recipients, "limits.", 1),
        max_connections=_int(lim_t, "max_connections", Limits.max_connections, "limits.", 1),
        max_connections_per_ip=_int(
            lim_t, "max_connections_per_ip", Limits.max_connections_per_ip, "limits.", 1
        ),
        command_timeout=_int(lim_t, "command_timeout", Limits.command_timeout, "limits.", 1),
        imap_idle_timeout=_int(lim_t, "imap_idle_timeout", Limits.imap_idle_timeout, "limits.", 60),
        default_quota=_int(lim_t, "default_quota", 0, "limits.", 0),
        login_free_failures=_int(lim_t, "login_free_failures", 3, "limits.", 1),
        login_ip_free_failures=_int(lim_t, "login_ip_free_failures", 10, "limits.", 1),
        login_backoff_cap=_int(lim_t, "login_backoff_cap", 300, "limits.", 1),
        login_account_ceiling=_int(lim_t, "login_account_ceiling", 20, "limits.", 1),
        login_account_delay_cap=_int(lim_t, "login_account_delay_cap", 8, "limits.", 0),
        disk_reserve=_int(lim_t, "disk_reserve", 16 << 20 if dev else -1, "limits.", -1),
    )
    q_t = _table(raw, "queue")
    queue = Queue(
        max_age=_int(q_t, "max_age", Queue.max_age, "queue.", 60),
        delay_warning=_int(q_t, "delay_warning", Queue.delay_warning, "queue.", 0),
        concurrency_per_domain=_int(
            q_t, "concurrency_per_domain", Queue.concurrency_per_domain, "queue.", 1
        ),
        concurrency=_int(q_t, "concurrency", Queue.concurrency, "queue.", 1),
    )
    d_t = _table(raw, "dkim")
    selector = _str(d_t, "selector", "pb1", "dkim.")
    if not selector or not all(c.isalnum() or c in "-_" for c in selector):
        raise ConfigError("dkim.selector", f"{selector!r} is not a valid selector")
    algorithm = _str(d_t, "algorithm", "both", "dkim.")
    if algorithm not in ("rsa", "ed25519", "both"):
        raise ConfigError("dkim.algorithm", "must be 'rsa', 'ed25519' or 'both'")
    return Config(
        hostname=hostname,
        data_dir=data_dir,
        mail_dir=mail_dir,
        ctl_socket=ctl_socket,
        listeners=_listeners(raw, dev),
        tls=tls,
        limits=limits,
        queue=queue,
        dkim=Dkim(selector=selector, algorithm=algorithm),  # type: ignore[arg-type]
        smarthosts=_smarthosts(raw, base),
        backup=_backup(raw, base, data_dir),
        filters=_filters(raw, base),
        smtp=_smtp(raw, dev),
        dev=dev,
        source=source,
    )


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
"""
