"""The "import" suite: moving an IMAP account into Pillarbox.

Source: the reference Dovecot, a user of its own (``source@bench.test``) holding
``count`` messages in four folders (nested, with flags), written straight into its
Maildir. Pillarbox side: ``pillarbox import imap`` into a fresh local user (a job in the
running daemon). Reference side: the same copy made by an IMAP-to-IMAP client into
another fresh user through Pillarbox's own IMAPS: imapsync when it is installed (it is
not packaged in Debian 12, so ``make bench`` cannot install it), else mbsync (isync,
Debian 12) with ``CopyArrivalDate`` and ``Create``. Both write into the same Pillarbox
store, so the ratio compares the importers, not the stores. Figure: messages per second
from start to the last message stored (median of the runs).
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from appliance.accounts import Accounts
from appliance.config import Config
from bench.corpus import message
from bench.loads import Target
from tests.harness import REPO

SOURCE_USER = "source@bench.test"
FOLDERS = (("INBOX", 0.4), ("Sent", 0.2), ("Work", 0.2), ("Work/Projects", 0.2))
LETTERS = "DFRS"


def fill_source(maildir: Path, count: int) -> None:
    """``count`` messages of about 3 KB in the source's folders, random flags and dates."""
    rng = random.Random(11)
    i = 0
    for name, share in FOLDERS:
        folder = maildir if name == "INBOX" else maildir / ("." + name.replace("/", "."))
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for _ in range(int(count * share)):
            i += 1
            data = message(i, 3000, to=SOURCE_USER, seed=23)
            flags = "".join(c for c in LETTERS if rng.random() < 0.4)
            date = 1_600_000_000 + rng.randint(0, 100_000_000)
            path = folder / "cur" / f"{date}.M{i}P1.src:2,{flags}"
            path.write_bytes(data)
            os.utime(path, (date, date))
    nobody = pwd.getpwnam("nobody")
    for dirpath, _dirs, files in os.walk(maildir.parent):
        os.chown(dirpath, nobody.pw_uid, nobody.pw_gid)
        for n in files:
            os.chown(os.path.join(dirpath, n), nobody.pw_uid, nobody.pw_gid)


def _stored(cfg: Config, user: str) -> int:
    local, domain = user.split("@")
    root = cfg.mail_dir / domain / local
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        if dirpath.endswith(("/cur", "/new")):
            n += sum(1 for f in files if not f.startswith("."))
    return n


def pillarbox_import(cfg: Config, ref: Target, user: str, password: str) -> float:
    start = time.monotonic()
    r = subprocess.run(
        [
            sys.executable, "-m", "appliance.cli", "import", "imap",
            "--host", "127.0.0.1", "--port", str(ref.imaps_port), "--user", SOURCE_USER,
            "--password-stdin", "--to", user, "--no-verify", "-c", str(cfg.source),
        ],
        input=password + "\n", capture_output=True, text=True, timeout=3600, cwd=REPO,
    )  # fmt: skip
    if r.returncode != 0:
        raise RuntimeError(f"pillarbox import failed: {r.stderr.strip()}")
    return time.monotonic() - start


def reference_import(
    pb: Target, ref: Target, user: str, password: str, work: Path, cert: Path
) -> float:
    if shutil.which("imapsync"):
        argv = [
            "imapsync", "--host1", "127.0.0.1", "--port1", str(ref.imaps_port), "--ssl1",
            "--user1", SOURCE_USER, "--password1", password,
            "--host2", "127.0.0.1", "--port2", str(pb.imaps_port), "--ssl2",
            "--user2", user, "--password2", password, "--automap",
            "--sslargs1", "SSL_verify_mode=0", "--sslargs2", "SSL_verify_mode=0",
            "--nolog", "--noreleasecheck", "--tmpdir", str(work),
        ]  # fmt: skip
    else:
        rc = work / "mbsyncrc"
        rc.write_text(
            f"""IMAPAccount src
Host localhost
Port {ref.imaps_port}
User {SOURCE_USER}
Pass {password}
SSLType IMAPS
CertificateFile {ref.inbox.parents[3] / "cert.pem"}

IMAPStore src-store
Account src

IMAPAccount dst
Host localhost
Port {pb.imaps_port}
User {user}
Pass {password}
SSLType IMAPS
CertificateFile {cert}

IMAPStore dst-store
Account dst

Channel move
Far :src-store:
Near :dst-store:
Patterns {" ".join(name for name, _ in FOLDERS)}
Create Near
Sync Pull
CopyArrivalDate yes
SyncState {work}/
"""
        )
        argv = ["mbsync", "-c", str(rc), "-q", "move"]
    start = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {(r.stderr or r.stdout).strip()[-500:]}")
    return time.monotonic() - start


def run_suite(
    pb: Target,
    ref: Target,
    cfg: Config,
    count: int,
    runs: int,
    work: Path,
    record: Callable[[str, float, float], None],
) -> None:
    """Fill the source once, then per run import into fresh users on both sides."""
    source = ref.inbox.parent.parent / SOURCE_USER / "Maildir"
    fill_source(source, count)
    total = sum(int(count * share) for _, share in FOLDERS)
    tool = "imapsync" if shutil.which("imapsync") else "mbsync"
    accounts = Accounts(cfg.accounts_db)
    for run in range(runs):
        ours, theirs = f"import-pb-{run}@bench.test", f"import-ref-{run}@bench.test"
        for user in (ours, theirs):
            accounts.add_user(user, pb.password)
        d = work / f"run{run}"
        d.mkdir(parents=True)
        t_ours = pillarbox_import(cfg, ref, ours, pb.password)
        t_ref = reference_import(pb, ref, theirs, pb.password, d, cfg.tls.cert)
        for user, what in ((ours, "pillarbox"), (theirs, tool)):
            got = _stored(cfg, user)
            if got != total:
                raise RuntimeError(f"{what} stored {got} of {total} messages")
        print(
            f"  import {total} msgs: pillarbox {total / t_ours:.1f} msg/s, "
            f"{tool} {total / t_ref:.1f} msg/s",
            flush=True,
        )
        record(f"Import {total:,} msgs IMAP->box (ref: {tool})", total / t_ours, total / t_ref)
    accounts.close()
