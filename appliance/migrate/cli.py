"""``pillarbox import imap|mbox|maildir|status`` and ``pillarbox export``.

Imports run in the daemon when it answers on the ctl socket (IMAP IDLE clients see the
mail arrive; the command follows the job's progress until it ends), else in this
process, straight into the store (its file locks keep it safe; run it as the mail
user). ``--dry-run`` and ``export`` always run here: they only read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from appliance.cliconfig import CliError, load_config
from appliance.config import Config
from appliance.migrate import runner
from appliance.migrate import state as st
from appliance.migrate.engine import ImapImporter
from appliance.migrate.export import export_maildir, export_mbox

POLL = 1.0


def _fail(text: str) -> Exception:
    return CliError(text)


def _store(cfg: Config) -> Any:
    """The store on disk, for a command that runs without the daemon. As root on a box
    whose mail belongs to the mail user, files root made would lock the daemon out."""
    from appliance.mime.summary import is_current, summarize
    from appliance.store.maildir import MaildirStore

    try:
        owner = cfg.mail_dir.stat().st_uid
    except FileNotFoundError:
        owner = os.geteuid()
    if os.geteuid() == 0 and owner != 0:
        import pwd

        name = pwd.getpwuid(owner).pw_name
        raise _fail(
            f"{cfg.mail_dir} belongs to {name}: run this as that user "
            f"(runuser -u {name} -- pillarbox ...)"
        )

    return MaildirStore(
        cfg.mail_dir, notify=lambda _e: None, summarizer=summarize, summary_current=is_current
    )


def _accounts(cfg: Config) -> Any:
    from appliance.accounts import Accounts

    return Accounts(cfg.accounts_db, readonly=True)


def _daemon_up(cfg: Config) -> bool:
    from appliance.backup.restore import daemon_running

    return daemon_running(cfg)


def _split_to(to: str) -> tuple[str, str]:
    user, _, folder = to.partition("/")
    return user.strip().lower(), folder.strip("/")


def _line(job: dict[str, Any]) -> str:
    total = f"/{job['total']}" if job.get("total") else ""
    where = f" [{job['folder']}]" if job.get("folder") else ""
    return (
        f"{job['status']}: copied {job['copied']}{total}, skipped {job['skipped']}, "
        f"failed {job['failed']}, {job['rate']} msg/s{where}"
    )


def _report(job: dict[str, Any]) -> int:
    print(_line(job))
    for reason in job.get("failures", []):
        print(f"  failed: {reason}")
    if job["status"] == "done":
        print(job["message"])
        return 1 if job["failed"] else 0
    print(f"pillarbox: {job['message'] or job['status']}", file=sys.stderr)
    return 1


def _via_daemon(cfg: Config, params: dict[str, Any], password: str, progress: bool) -> int:
    from appliance.ctl.client import CtlClient
    from appliance.ctl.protocol import CtlError

    ctl = CtlClient(cfg.ctl_socket)
    try:
        jid = ctl.call("migrate_start", **params, password=password)["job_id"]
        print(f"import {jid} started in the daemon")
        while True:
            time.sleep(POLL)
            jobs = ctl.call("migrate_status", job_id=jid)["jobs"]
            job = jobs[0] if jobs else None
            if job is None:
                continue
            if job["status"] not in ("running", "pending"):
                return _report(job)
            if progress:
                print(_line(job), flush=True)
    except CtlError as exc:
        raise _fail(str(exc)) from None


def _in_process(cfg: Config, params: dict[str, Any], password: str, progress: bool) -> int:
    last = [0.0]

    def show(state: st.JobState) -> None:
        if progress and time.monotonic() - last[0] >= POLL:
            last[0] = time.monotonic()
            print(_line(state.summary()), flush=True)

    try:
        job = runner.run(cfg, _accounts(cfg), _store(cfg), params, password, on_progress=show)
    except runner.BadRequest as exc:
        raise _fail(str(exc)) from None
    return _report(job.summary())


def _start(cfg: Config, params: dict[str, Any], password: str, args: argparse.Namespace) -> int:
    if _daemon_up(cfg) and not args.here:
        return _via_daemon(cfg, params, password, args.progress)
    return _in_process(cfg, params, password, args.progress)


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise _fail("no password on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise _fail("no terminal to ask for the password; use --password-stdin")
    import getpass

    return getpass.getpass(f"Password of {args.user} at {args.host}: ")


def cmd_imap(args: argparse.Namespace, cfg: Config) -> int:
    user, folder = _split_to(args.to)
    if folder:
        raise _fail("an IMAP import copies every folder: give --to USER without a folder")
    fmap: dict[str, str] = {}
    for item in args.folder_map or []:
        src, eq, dst = item.partition("=")
        if not eq or not src or not dst:
            raise _fail(f"--folder-map {item!r}: use SOURCE=LOCAL")
        fmap[src] = dst
    security = "starttls" if args.starttls else "plain" if args.plain else "tls"
    params: dict[str, Any] = {
        "kind": "imap",
        "user": user,
        "host": args.host,
        "port": args.port or runner.DEFAULT_PORTS[security],
        "security": security,
        "login": args.user,
        "verify": not args.no_verify,
        "folder_map": fmap,
        "gmail_all_mail": args.gmail_all_mail,
        "pause": args.pause,
    }
    password = _password(args)
    if args.dry_run:
        return _dry_run(cfg, params, password)
    return _start(cfg, params, password, args)


def _dry_run(cfg: Config, params: dict[str, Any], password: str) -> int:
    from appliance.delivery.recipients import quota_of
    from appliance.migrate.engine import ImportFailed

    accounts = _accounts(cfg)
    try:
        user = runner._user(accounts, params)
        job = runner.imap_job(params, password, user)
    except runner.BadRequest as exc:
        raise _fail(str(exc)) from None
    quota = quota_of(accounts, user, cfg.limits.default_quota)
    try:
        plan = ImapImporter(job, _store(cfg), cfg.data_dir, quota).dry_run()
    except ImportFailed as exc:
        raise _fail(str(exc)) from None
    width = max([len(f.name) for f in plan.folders] + [6])
    print(f"{'FOLDER':<{width}}  {'MESSAGES':>8}  {'SIZE':>12}  LOCAL")
    for f in plan.folders:
        dest = f.dest if f.dest is not None else "-"
        print(f"{f.name:<{width}}  {f.messages:>8}  {f.size:>12}  {dest} ({f.why})")
    print(f"total: {plan.messages} messages, {plan.size} bytes")
    if plan.quota:
        print(f"local quota: {plan.used} of {plan.quota} bytes used")
    if not plan.fits:
        print(
            f"pillarbox: this does not fit the quota of {user}: "
            f"{plan.used + plan.size - plan.quota} bytes over",
            file=sys.stderr,
        )
        return 1
    print("fits the local quota" if plan.quota else "no local quota")
    return 0


def cmd_file(args: argparse.Namespace, cfg: Config) -> int:
    user, folder = _split_to(args.to)
    params: dict[str, Any] = {
        "kind": args.kind,
        "user": user,
        "path": str(Path(args.source).resolve()),
        "folder": folder,
        "variant": getattr(args, "variant", "mboxrd"),
        "labels": getattr(args, "gmail_labels", False),
    }
    if not Path(params["path"]).exists():
        raise _fail(f"{args.source}: no such file or directory")
    return _start(cfg, params, "", args)


def cmd_status(args: argparse.Namespace, cfg: Config) -> int:
    jobs = st.all_jobs(cfg.data_dir)
    if not jobs:
        print("no imports yet")
    for job in jobs:
        print(f"{job.job_id}  {job.kind:<7} {job.user}  {_line(job.summary())}")
        if job.message:
            print(f"    {job.message}")
    return 0


def cmd_export(args: argparse.Namespace, cfg: Config) -> int:
    user = args.user.strip().lower()
    if _accounts(cfg).get_user(user) is None:
        raise _fail(f"no local user {user!r}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise _fail(f"{out} is not empty; export into a new directory")
    store = _store(cfg)
    result = (
        export_maildir(store, user, out)
        if args.format == "maildir"
        else export_mbox(store, user, out)
    )
    print(
        f"exported {result.messages} messages ({result.bytes} bytes) "
        f"from {result.folders} folders to {out}"
    )
    return 0


def _wrap(handler: Any) -> Any:
    def call(args: argparse.Namespace, cfg: Config | None = None) -> int:
        return int(handler(args, cfg if cfg is not None else load_config(args)))

    return call


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    help_ = "import mail from another IMAP server, an mbox file or a Maildir"
    imp = sub.add_parser("import", parents=[common], help=help_, description=help_)
    isub = imp.add_subparsers(dest="import_command", required=True, metavar="SOURCE")

    def add(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = isub.add_parser(
            name, parents=[common], help=text, description=text
        )
        return p

    def run_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--progress", action="store_true", help="print a progress line a second")
        p.add_argument(
            "--here",
            action="store_true",
            help="run in this process even when the daemon runs (as the mail user)",
        )

    im = add("imap", "copy every folder of an IMAP account, with flags and dates")
    im.add_argument("--host", required=True)
    im.add_argument("--port", type=int, default=0, help="default 993 (--tls) or 143")
    sec = im.add_mutually_exclusive_group()
    sec.add_argument("--tls", action="store_true", help="implicit TLS (the default)")
    sec.add_argument("--starttls", action="store_true", help="plain connection, then STARTTLS")
    sec.add_argument("--plain", action="store_true", help="no TLS (a local test server only)")
    im.add_argument("--user", required=True, help="the login at the old provider")
    im.add_argument("--password-stdin", action="store_true")
    im.add_argument("--to", required=True, help="the local user")
    im.add_argument(
        "--folder-map", action="append", metavar="SRC=DST", help="put folder SRC into local DST"
    )
    im.add_argument("--dry-run", action="store_true", help="list folders, counts, sizes, quota")
    im.add_argument(
        "--gmail-all-mail",
        choices=["dedupe", "skip"],
        default="dedupe",
        help="Gmail's All Mail: copy what no label folder holds (dedupe) or skip it",
    )
    im.add_argument(
        "--pause", type=float, default=2.0, help="first pause (s) after a drop or [LIMIT]"
    )
    im.add_argument(
        "--no-verify", action="store_true", help="accept any certificate (test servers)"
    )
    run_opts(im)
    im.set_defaults(func=_wrap(cmd_imap))

    mb = add("mbox", "import an mbox file (mutt, Google Takeout) or Thunderbird's Local Folders")
    mb.add_argument("source", metavar="FILE|DIR")
    mb.add_argument("--to", required=True, help="USER or USER/folder (default INBOX)")
    mb.add_argument("--variant", choices=["mboxrd", "mboxo"], default="mboxrd")
    mb.add_argument("--gmail-labels", action="store_true", help="Takeout: file by X-Gmail-Labels")
    run_opts(mb)
    mb.set_defaults(func=_wrap(cmd_file), kind="mbox")

    md = add("maildir", "import a Maildir (with Maildir++ subfolders)")
    md.add_argument("source", metavar="DIR")
    md.add_argument("--to", required=True, help="USER or USER/folder (default INBOX)")
    run_opts(md)
    md.set_defaults(func=_wrap(cmd_file), kind="maildir")

    stp = add("status", "list imports and their results")
    stp.set_defaults(func=_wrap(cmd_status))

    help_ = "export a user's mail as Maildir or one mbox file per folder"
    ex = sub.add_parser("export", parents=[common], help=help_, description=help_)
    ex.add_argument("user")
    ex.add_argument("--format", choices=["maildir", "mbox"], default="maildir")
    ex.add_argument("out", metavar="OUT", help="a new (or empty) directory")
    ex.set_defaults(func=_wrap(cmd_export))
