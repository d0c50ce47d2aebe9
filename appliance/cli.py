"""The `pillarbox` command: run the daemon, manage users/aliases/domains, talk to the daemon.

Exit codes: 0 success, 1 the operation failed (message on stderr), 2 bad usage.
The config file is found from --config, then $PILLARBOX_CONFIG, then
/etc/pillarbox/pillarbox.toml (appliance), then ./var/pillarbox.toml (dev).
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appliance import __version__, config
from appliance.cliconfig import CliError, load_config

# Modules that add subcommands: each has register(subparsers) whose parsers set
# `func(args, cfg) -> int` via set_defaults.
CLI_MODULES: tuple[str, ...] = ("appliance.backup.cli", "appliance.migrate.cli")


def _accounts(cfg: config.Config) -> Any:
    from appliance.accounts import Accounts

    return Accounts(cfg.accounts_db)


def _read_password(args: argparse.Namespace) -> str:
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        if not line:
            raise CliError("no password on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for a password; use --password-stdin")
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Repeat password: "):
        raise CliError("the passwords do not match")
    return first


def _print_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)).rstrip())


def _size(text: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in units else (t, "")
    try:
        value = float(num)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 500M, 2G, 0)") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a size cannot be negative")
    return int(value * units[unit])


def _size_text(n: int) -> str:
    """Bytes in the units `_size` reads back: ``500 MiB``, ``1.5 GiB``, ``100 B``."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor:
            return f"{n / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} B"


# ---------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    from appliance import devrun

    return devrun.run(getattr(args, "config", None), dev=args.dev, web=not args.no_web)


def cmd_config_check(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    print(f"{cfg.source}: ok (hostname {cfg.hostname}, data in {cfg.data_dir})")
    return 0


def cmd_domain(args: argparse.Namespace) -> int:
    acc = _accounts(load_config(args))
    if args.action == "add":
        print(f"added domain {acc.add_domain(args.name)}")
    elif args.action == "del":
        acc.remove_domain(args.name)
        print(f"removed domain {args.name}")
    else:
        for d in acc.list_domains():
            print(d)
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    acc = _accounts(cfg)
    if args.action == "add":
        password = _read_password(args)
        quota = cfg.limits.default_quota if args.quota is None else args.quota
        user = acc.add_user(args.email, password, quota_bytes=quota, is_admin=args.admin)
        print(f"added user {user.email}")
    elif args.action == "del":
        acc.remove_user(args.email)
        print(f"removed user {args.email} (their mail stays on disk)")
    elif args.action == "passwd":
        acc.set_password(args.email, _read_password(args))
        print(f"password changed for {args.email}")
    elif args.action == "quota":
        acc.set_quota(args.email, args.size)
        print(f"quota for {args.email}: {_size_text(args.size) if args.size else 'unlimited'}")
    else:
        rows = [
            (
                u.email,
                _size_text(u.quota_bytes) if u.quota_bytes else "unlimited",
                "admin" if u.is_admin else "user",
                "disabled" if u.disabled else "",
            )
            for u in acc.list_users(args.domain)
        ]
        _print_table(rows, ("EMAIL", "QUOTA", "ROLE", "STATE"))
    return 0


def cmd_alias(args: argparse.Namespace) -> int:
    acc = _accounts(load_config(args))
    if args.action == "add":
        for target in args.targets:
            a = acc.add_alias(args.source, target)
            print(f"added alias {a.source} -> {a.target}")
    elif args.action == "del":
        n = acc.remove_alias(args.source, args.target)
        print(f"removed {n} alias entr{'y' if n == 1 else 'ies'}")
    else:
        _print_table(
            [(a.source, a.target) for a in acc.list_aliases(args.domain)], ("ALIAS", "TARGET")
        )
    return 0


def _ctl(args: argparse.Namespace, cmd: str, **kw: Any) -> Any:
    from appliance.ctl.client import CtlClient
    from appliance.ctl.protocol import CtlError

    cfg = load_config(args)
    try:
        return CtlClient(cfg.ctl_socket).call(cmd, **kw)
    except CtlError as exc:
        raise CliError(str(exc)) from None


def cmd_status(args: argparse.Namespace) -> int:
    result = _ctl(args, "status")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    from appliance.ctl.statustext import render

    print(render(result))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    _ctl(args, "reload")
    print("reloaded")
    return 0


def cmd_queue(args: argparse.Namespace) -> int:
    if args.action == "list":
        entries = _ctl(args, "queue.list")
        if args.json:
            print(json.dumps(entries, indent=2))
            return 0
        if not entries:
            print("the queue is empty")
        for e in entries:
            print(f"{e['id']}  {e['size']:>9} B  from <{e['sender']}>")
            for r in e["recipients"]:
                err = f"  ({r['last_error']})" if r.get("last_error") else ""
                print(f"    {r['status']:<9} {r['address']}  attempts={r['attempts']}{err}")
    elif args.action == "retry":
        n = _ctl(args, "queue.retry", **({"id": args.id} if args.id else {}))["rescheduled"]
        print(f"{n} entr{'y' if n == 1 else 'ies'} will be retried now")
    elif args.action == "delete":
        _ctl(args, "queue.delete", id=args.id)
        print(f"deleted {args.id} (no bounce sent)")
    else:
        n = _ctl(args, "queue.flush")["rescheduled"]
        print(f"{n} entr{'y' if n == 1 else 'ies'} will be retried now")
    return 0


def cmd_dns(args: argparse.Namespace) -> int:
    from appliance.dnsrecords import zone_text

    cfg = load_config(args)
    acc = _accounts(cfg)
    domains = [args.domain] if args.domain else acc.list_domains()
    if not domains:
        raise CliError("no domains yet; add one with `pillarbox domain add`")
    print("\n".join(zone_text(cfg, domain) for domain in domains), end="")
    return 0


def cmd_setup_secret(args: argparse.Namespace) -> int:
    from appliance.setupsecret import console_secret

    code = console_secret(load_config(args))
    if code is None:  # an admin exists: the wizard is closed and the code file deleted
        print("This box is set up: there is no setup code any more.", file=sys.stderr)
        return 1
    print(code)
    return 0


# ---------------------------------------------------------------- parser


class _Nested:
    """add_subparsers wrapper whose parsers also accept the common options (-c)."""

    def __init__(self, parent: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
        self._sub = parent.add_subparsers(dest="action", required=True, metavar="ACTION")
        self._common = common

    def add_parser(self, name: str, **kw: Any) -> argparse.ArgumentParser:
        kw.setdefault("description", kw.get("help"))
        parser: argparse.ArgumentParser = self._sub.add_parser(name, parents=[self._common], **kw)
        return parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="pillarbox.toml (default: $PILLARBOX_CONFIG, /etc/pillarbox/pillarbox.toml, "
        "./var/pillarbox.toml)",
    )
    p = argparse.ArgumentParser(prog="pillarbox", description="Pillarbox mail appliance")
    p.add_argument("--version", action="version", version=f"pillarbox {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> Any:
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_)
        sp.set_defaults(func=func)
        return sp

    run = add("run", cmd_run, "run the mail daemon (and, in dev mode, the web wizard)")
    run.add_argument(
        "--dev",
        action="store_true",
        help="dev mode: create ./var/pillarbox.toml with embedded defaults",
    )
    run.add_argument("--no-web", action="store_true", help="do not start the web wizard")

    cfg_p = add("config", cmd_config_check, "check the config file")
    cfg_p.add_argument("action", choices=["check"])

    dom = add("domain", cmd_domain, "manage mail domains")
    dom_sub = _Nested(dom, common)
    dom_sub.add_parser("add", help="serve mail for a domain").add_argument("name")
    dom_sub.add_parser("del", help="stop serving a domain (it must have no users)").add_argument(
        "name"
    )
    dom_sub.add_parser("list", help="list domains")

    usr = add("user", cmd_user, "manage mail users")
    usr_sub = _Nested(usr, common)
    u_add = usr_sub.add_parser("add", help="create a user (asks for the password)")
    u_add.add_argument("email")
    u_add.add_argument("--quota", type=_size, default=None, help="e.g. 2G; 0 = unlimited")
    u_add.add_argument("--admin", action="store_true", help="may use the web dashboard")
    u_add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    usr_sub.add_parser("del", help="delete a user").add_argument("email")
    u_pw = usr_sub.add_parser("passwd", help="change a user's password")
    u_pw.add_argument("email")
    u_pw.add_argument("--password-stdin", action="store_true")
    u_q = usr_sub.add_parser("quota", help="set a user's quota")
    u_q.add_argument("email")
    u_q.add_argument("size", type=_size, help="e.g. 500M, 2G; 0 = unlimited")
    u_list = usr_sub.add_parser("list", help="list users")
    u_list.add_argument("--domain")

    ali = add("alias", cmd_alias, "manage aliases (@domain = catch-all)")
    ali_sub = _Nested(ali, common)
    a_add = ali_sub.add_parser("add", help="add an alias with one or more targets")
    a_add.add_argument("source", help="alias@domain, or @domain for a catch-all")
    a_add.add_argument("targets", nargs="+")
    a_del = ali_sub.add_parser("del", help="remove an alias (all targets, or one)")
    a_del.add_argument("source")
    a_del.add_argument("target", nargs="?")
    a_list = ali_sub.add_parser("list", help="list aliases")
    a_list.add_argument("--domain")

    st = add("status", cmd_status, "show the running daemon's status")
    st.add_argument("--json", action="store_true", help="the status as JSON, for scripts")
    add("reload", cmd_reload, "reload config and certificates in the running daemon")
    add("setup-secret", cmd_setup_secret, "print the one-time secret that unlocks the wizard")

    que = add("queue", cmd_queue, "inspect and steer the outbound queue")
    que_sub = _Nested(que, common)
    q_list = que_sub.add_parser("list", help="list queued messages and their recipients")
    q_list.add_argument("--json", action="store_true", help="the status as JSON, for scripts")
    que_sub.add_parser("retry", help="retry one entry (or all) now").add_argument("id", nargs="?")
    que_sub.add_parser("delete", help="drop an entry without a bounce").add_argument("id")
    que_sub.add_parser("flush", help="retry everything now")

    dns = add("dns", cmd_dns, "print the DNS records to publish, as zone-file text")
    dns.add_argument("--domain", help="only this domain")

    for name in CLI_MODULES:
        importlib.import_module(name).register(sub, common)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from appliance.accounts import AccountError, WeakPassword

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, AccountError, WeakPassword) as exc:
        print(f"pillarbox: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
