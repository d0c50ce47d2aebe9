"""``pillarbox backup init|run|list|status|restore|check``.

Wire-up: ``appliance.cli`` lists ``"appliance.backup.cli"`` in CLI_MODULES; its
``register(subparsers, common)`` adds the ``backup`` command. The systemd timer on the
appliance calls ``pillarbox backup run --scheduled`` often (hourly, Persistent=true); it
backs up only when no backup succeeded since the latest daily ``backup.time`` slot.

Restoring one user's mail goes through the running daemon when there is one (so IMAP
IDLE clients see the new folder at once), else straight into the store on disk (the
store's file locks keep it safe). Whole-box restore needs the daemon stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from appliance.backup import password, schedule
from appliance.backup.initialize import init_repository
from appliance.backup.restic import BackupError, Progress, Restic, repository_for
from appliance.backup.restore import daemon_running, restore_box, restore_mailbox
from appliance.backup.runner import BackupRunner, read_status, run_lock
from appliance.cliconfig import CliError, load_config
from appliance.config import Config

Handler = Callable[[argparse.Namespace, Config], int]
RESTORE_TIMEOUT = 6 * 3600.0


def _cli_error(text: str) -> Exception:
    return CliError(text)


def _wrap(handler: Handler) -> Callable[..., int]:
    """Accept ``func(args)`` (loads the config) and ``func(args, cfg)``."""

    def call(args: argparse.Namespace, cfg: Config | None = None) -> int:
        try:
            return handler(args, cfg if cfg is not None else load_config(args))
        except (BackupError, password.PasswordError) as exc:
            raise _cli_error(str(exc)) from None

    return call


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


# ------------------------------------------------------------------ commands


def cmd_init(args: argparse.Namespace, cfg: Config) -> int:
    existing: str | None = None
    if args.existing:
        if args.password_stdin:
            existing = sys.stdin.readline().strip()
        elif sys.stdin.isatty():
            import getpass

            existing = getpass.getpass("Repository password (from the recovery sheet): ")
        else:
            raise _cli_error("no terminal to ask for the password; use --password-stdin")
    result = init_repository(cfg, existing_password=existing)
    if not result.created:
        print(f"connected to the existing repository at {result.location}")
        return 0
    print(f"initialised the backup repository at {result.location}")
    if result.password is not None:
        print()
        print("Repository password (write it down and keep it away from this box;")
        print("without it the backups cannot be restored):")
        print()
        print(f"    {result.password}")
        print()
        print("The web dashboard shows a printable recovery sheet (Backup > Recovery sheet).")
    return 0


def cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    if args.scheduled:
        if cfg.backup.target == "none" or cfg.backup.schedule == "off":
            print("scheduled backups are off in the config; nothing to do")
            return 0
        last_ok = read_status(cfg).get("last_success", {}).get("finished")
        if not schedule.due(time.time(), cfg.backup.time, last_ok):
            print(f"the backup for the {cfg.backup.time} slot is done; nothing to do")
            return 0
    repository_for(cfg)  # NotConfigured before anything else
    from appliance.accounts import Accounts
    from appliance.backup import store_lock

    accounts = Accounts(cfg.accounts_db)
    try:
        last_shown = [0.0]

        def show(p: Progress) -> None:
            now = time.monotonic()
            if args.progress and now - last_shown[0] >= 2:
                last_shown[0] = now
                print(
                    f"  {p.percent * 100:5.1f}%  {p.files_done}/{p.total_files} files", flush=True
                )

        runner = BackupRunner(
            cfg, accounts, user_lock=store_lock.file_user_lock(cfg.mail_dir), on_progress=show
        )
        result = runner.run("scheduled" if args.scheduled else "manual", forget=not args.no_forget)
    finally:
        accounts.close()
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    elif result.ok:
        s = result.summary
        print(
            f"snapshot {result.snapshot_id[:8]} saved: {s.get('total_files', 0)} files, "
            f"{s.get('data_added', 0)} new bytes in {result.finished - result.started:.1f} s"
        )
        if result.error:
            print(f"warning: {result.error}", file=sys.stderr)
    else:
        raise _cli_error(f"backup failed: {result.error}")
    return 0


def cmd_list(args: argparse.Namespace, cfg: Config) -> int:
    snaps = Restic(repository_for(cfg)).snapshots()
    if args.json:
        print(json.dumps([s.to_json() for s in snaps], indent=2))
        return 0
    if not snaps:
        print("no snapshots yet")
    for s in snaps:
        tags = ",".join(t for t in s.tags if t != "pillarbox")
        print(f"{s.short_id}  {s.time.astimezone():%Y-%m-%d %H:%M:%S}  {s.hostname}  {tags}")
    return 0


def cmd_status(args: argparse.Namespace, cfg: Config) -> int:
    st = read_status(cfg)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(f"target: {cfg.backup.target}  schedule: {cfg.backup.schedule} at {cfg.backup.time}")
    print(f"state: {st.get('state', 'never')}")
    for key, label in (("last", "last run"), ("last_success", "last success")):
        r = st.get(key)
        if isinstance(r, dict):
            what = r.get("snapshot_id", "")[:8] if r.get("ok") else f"failed: {r.get('error')}"
            print(f"{label}: {_when(r.get('finished'))}  {what}")
    return 0


def cmd_check(args: argparse.Namespace, cfg: Config) -> int:
    restic = Restic(repository_for(cfg))
    restic.unlock()
    restic.check(args.read_data_subset)
    print("repository check passed")
    return 0


def cmd_restore(args: argparse.Namespace, cfg: Config) -> int:
    if args.all:
        box = restore_box(
            cfg, snapshot=args.snapshot, keep_config=args.keep_config, force=args.force
        )
        print(
            f"restored snapshot {box.snapshot.short_id} ({box.snapshot.time.astimezone():%c}): "
            f"{len(box.users)} user(s)" + (", config file" if box.config_restored else "")
        )
        for path in box.moved_aside:
            print(f"  kept the previous {path}")
        print("start the daemon to serve the restored mail")
        return 0
    if not args.user:
        raise _cli_error("say what to restore: --all (whole box) or --user EMAIL")
    if args.uid and not args.mailbox:
        raise _cli_error("--uid needs --mailbox")
    if daemon_running(cfg):
        from appliance.ctl.client import CtlClient
        from appliance.ctl.protocol import CtlError

        try:
            result: dict[str, Any] = CtlClient(cfg.ctl_socket, timeout=RESTORE_TIMEOUT).call(
                "backup_restore",
                user=args.user,
                snapshot=args.snapshot,
                mailbox=args.mailbox,
                uids=args.uid or None,
                wait=True,
            )
        except CtlError as exc:
            raise _cli_error(str(exc)) from None
    else:
        from appliance.backup.restore import default_store_factory

        with run_lock(cfg, "restore"):
            result = restore_mailbox(
                cfg,
                default_store_factory(cfg.mail_dir),
                args.user,
                snapshot=args.snapshot,
                mailbox=args.mailbox,
                uids=args.uid or None,
            ).to_json()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"restored {result['messages']} message(s) for {result['user']} "
        f"into {result['destination']}/"
    )
    for name, n in result["mailboxes"].items():
        print(f"  {name}: {n}")
    return 0


# ------------------------------------------------------------------ parser


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    help_ = "back up and restore the box with restic"
    bk = sub.add_parser("backup", parents=[common], help=help_, description=help_)
    bsub = bk.add_subparsers(dest="backup_command", required=True, metavar="ACTION")

    def add(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        sp: argparse.ArgumentParser = bsub.add_parser(
            name, parents=[common], help=text, description=text
        )
        sp.set_defaults(func=_wrap(handler))
        return sp

    p_init = add("init", cmd_init, "create the repository and its password (shown once)")
    p_init.add_argument(
        "--existing",
        action="store_true",
        help="connect to an existing repository (disaster recovery): asks for its password",
    )
    p_init.add_argument("--password-stdin", action="store_true")

    p_run = add("run", cmd_run, "back up now, then apply the retention policy")
    p_run.add_argument(
        "--scheduled",
        action="store_true",
        help="called by the timer: runs only when the daily slot's backup is still owed",
    )
    p_run.add_argument("--no-forget", action="store_true", help="skip forget --prune")
    p_run.add_argument("--progress", action="store_true", help="print progress lines")
    p_run.add_argument("--json", action="store_true")

    p_list = add("list", cmd_list, "list snapshots")
    p_list.add_argument("--json", action="store_true")

    p_st = add("status", cmd_status, "show the last backup's result")
    p_st.add_argument("--json", action="store_true")

    p_check = add("check", cmd_check, "verify the repository's integrity (restic check)")
    p_check.add_argument(
        "--read-data-subset", default=None, metavar="N%", help="also read this share of the data"
    )

    p_res = add("restore", cmd_restore, "restore the whole box or one user's mail")
    what = p_res.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--all", action="store_true", help="disaster recovery into this (fresh, stopped) box"
    )
    what.add_argument("--user", help="append this user's backed-up mail under Restored/<date>")
    p_res.add_argument("--snapshot", default="latest", help="snapshot id (default: latest)")
    p_res.add_argument("--mailbox", help="only this mailbox (with --user)")
    p_res.add_argument(
        "--uid", type=int, action="append", help="only this UID (repeatable; with --mailbox)"
    )
    p_res.add_argument(
        "--keep-config", action="store_true", help="--all: keep the current config file"
    )
    p_res.add_argument(
        "--force", action="store_true", help="--all: even if this box has data (moved aside)"
    )
    p_res.add_argument("--json", action="store_true")
