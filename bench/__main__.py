"""`make bench`: Pillarbox side by side with Postfix (SMTP) and Dovecot (IMAP, POP3).

Both sides get the same load in one run, on loopback, with the same TLS settings, and
deliver to / read from Maildir with fsync. Each figure is the median of --runs runs and
is reported as the ratio Pillarbox / reference. Results go to bench/results/ as JSON
(latest.json and a timestamped copy) and a PNG chart.

    python -m bench                 # the full set (tens of minutes on 2 cores)
    python -m bench --quick         # small counts, one run: a smoke test of the harness
    python -m bench --only smtp,pop3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance import config
from appliance.accounts import Accounts
from appliance.tls import generate_self_signed
from bench import loads
from bench.corpus import maildir_files
from bench.procstat import rss
from bench.refservers import (
    BENCH_DOMAIN,
    BENCH_PASSWORD,
    BENCH_USER,
    DovecotInstance,
    PostfixInstance,
)
from tests.harness import REPO, Daemon, free_port, wait_port, write_config

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Scale:
    smtp_count: int
    smtp_sizes: tuple[int, ...]
    smtp_sessions: tuple[int, ...]
    mailboxes: tuple[int, ...]
    body_limit: int
    logins: int
    mixed_clients: int
    mixed_seconds: float
    idle_connections: int
    pop3_count: int
    runs: int


FULL = Scale(
    5000, (4096, 102400), (1, 10, 50), (10_000, 100_000), 10_000, 200, 50, 20.0, 1000, 1000, 3
)
QUICK = Scale(300, (4096, 102400), (1, 10), (2_000,), 2_000, 30, 10, 5.0, 100, 300, 1)


@dataclass
class Metric:
    name: str
    unit: str
    higher_is_better: bool
    pillarbox: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)

    def ratio(self) -> float | None:
        if not self.pillarbox or not self.reference:
            return None
        ref = statistics.median(self.reference)
        return statistics.median(self.pillarbox) / ref if ref else None


class Bench:
    def __init__(self, root: Path, scale: Scale) -> None:
        self.root = root
        self.scale = scale
        self.metrics: dict[str, Metric] = {}
        self.stack = ExitStack()

    def metric(self, name: str, unit: str, higher: bool) -> Metric:
        return self.metrics.setdefault(name, Metric(name, unit, higher))

    # -------------------------------------------------------------- servers

    def start_pillarbox(self) -> loads.Target:
        pb_dir = self.root / "pillarbox"
        cfg_path = write_config(
            pb_dir,
            hostname=f"mail.{BENCH_DOMAIN}",
            limits={
                "max_connections": 5000,
                "max_connections_per_ip": 5000,
                "max_message_size": 52428800,
            },
        )
        cfg = config.load(cfg_path)
        acc = Accounts(cfg.accounts_db)
        acc.add_domain(BENCH_DOMAIN)
        acc.add_user(BENCH_USER, BENCH_PASSWORD)
        acc.close()
        daemon = Daemon(cfg_path, wait_for=("smtp", "imaps", "pop3s"))
        daemon.start()
        self.stack.callback(daemon.stop)
        self.pillarbox_daemon = daemon
        self.pillarbox_cfg = cfg

        def pids() -> list[int]:
            return [daemon.proc.pid] if daemon.proc else []

        return loads.Target(
            "pillarbox",
            daemon.addr("smtp")[1],
            daemon.addr("imaps")[1],
            daemon.addr("pop3s")[1],
            BENCH_USER,
            BENCH_PASSWORD,
            cfg.mail_dir / BENCH_DOMAIN / BENCH_USER.split("@")[0],
            pids,
        )

    def start_reference(self) -> loads.Target:
        ref = self.root / "reference"
        ref.mkdir()
        os.chmod(self.root, 0o755)
        cert, key = ref / "cert.pem", ref / "key.pem"
        generate_self_signed(cert, key, f"ref.{BENCH_DOMAIN}")
        os.chmod(key, 0o644)  # dovecot's config process reads it as an unprivileged user
        pf = PostfixInstance(ref / "postfix", free_port())
        pf.start()
        self.stack.callback(pf.stop)
        dv = DovecotInstance(ref / "dovecot", free_port(), free_port(), cert, key)
        dv.start()
        self.stack.callback(dv.stop)
        # Postfix delivers into the same Maildir Dovecot serves: one reference "box".
        home = dv.maildir().parent
        home.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(pf.root / "mail", ignore_errors=True)
        (pf.root / "mail").symlink_to(home)
        _chown_nobody(home)

        def pids() -> list[int]:
            return pf.master_pids() + dv.master_pids()

        return loads.Target(
            "postfix+dovecot",
            pf.port,
            dv.imap_port,
            dv.pop3_port,
            BENCH_USER,
            BENCH_PASSWORD,
            home / "Maildir",
            pids,
        )

    # -------------------------------------------------------------- suites

    def smtp(self, targets: list[loads.Target]) -> None:
        s = self.scale
        for size in s.smtp_sizes:
            for sessions in s.smtp_sessions:
                label = f"SMTP {size // 1024} KB x{sessions}"
                rate = self.metric(f"{label}: messages/s", "msg/s", True)
                cpu = self.metric(f"{label}: CPU ms/message", "ms", False)
                peak = self.metric(f"{label}: peak RSS", "MB", False)
                for _ in range(s.runs):
                    for t in targets:
                        r = loads.smtp_load(t, s.smtp_count, size, sessions)
                        side = _side(t)
                        getattr(rate, side).append(r.rate)
                        getattr(cpu, side).append(r.cpu_per_msg_ms)
                        getattr(peak, side).append(r.peak_rss / 1e6)
                        print(f"  {t.name:>16} {label}: {r.rate:8.1f} msg/s", flush=True)

    def fill(self, targets: list[loads.Target], mailbox: str, count: int) -> None:
        for t in targets:
            conn = loads.imap_connect(t)
            conn.create(mailbox)
            conn.logout()
            folder = t.inbox / f".{mailbox}" / "new"
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in maildir_files(count, 3000, to=t.user):
                (folder / name.split(":")[0]).write_bytes(data)
            if t.name != "pillarbox":
                _chown_nobody(t.inbox)

    def imap(self, targets: list[loads.Target]) -> None:
        s = self.scale
        for _ in range(s.runs):
            for t in targets:
                self.metric("IMAP logins/s", "1/s", True).__getattribute__(_side(t)).append(
                    loads.imap_login_rate(t, s.logins)
                )
        for count in s.mailboxes:
            box = f"Bench{count}"
            self.fill(targets, box, count)
            for run in range(s.runs):
                for t in targets:
                    r = loads.imap_mailbox(t, box, count, s.body_limit)
                    side = _side(t)
                    k = f"{count:,} msgs"
                    if run == 0:
                        getattr(
                            self.metric(f"IMAP SELECT {k} (first, cold)", "s", False), side
                        ).append(r.select_cold)
                    getattr(self.metric(f"IMAP SELECT {k}", "s", False), side).append(r.select_warm)
                    getattr(self.metric(f"IMAP FETCH 1:* FLAGS {k}", "s", False), side).append(
                        r.fetch_flags
                    )
                    getattr(self.metric(f"IMAP FETCH 1:* ENVELOPE {k}", "s", False), side).append(
                        r.fetch_envelope
                    )
                    getattr(self.metric(f"IMAP FETCH BODY[] {k}", "MB/s", True), side).append(
                        r.fetch_body_mbps
                    )
                    getattr(self.metric(f"IMAP SEARCH TEXT {k}", "s", False), side).append(
                        r.search_text
                    )
                    print(
                        f"  {t.name:>16} IMAP {k}: select {r.select_warm:.3f}s "
                        f"flags {r.fetch_flags:.2f}s search {r.search_text:.2f}s",
                        flush=True,
                    )
        box = f"Bench{s.mailboxes[0]}"
        for _ in range(s.runs):
            for t in targets:
                ops = loads.imap_mixed(t, box, s.mixed_clients, s.mixed_seconds)
                print(f"  {t.name:>16} IMAP mixed: {ops:.1f} ops/s", flush=True)
                getattr(
                    self.metric(f"IMAP mixed {s.mixed_clients} clients", "ops/s", True), _side(t)
                ).append(ops)
        for t in targets:
            peak = loads.imap_idle_rss(t, s.idle_connections)
            print(f"  {t.name:>16} IMAP {s.idle_connections} IDLE: {peak / 1e6:.1f} MB", flush=True)
            getattr(
                self.metric(f"IMAP {s.idle_connections} IDLE: RSS", "MB", False), _side(t)
            ).append(peak / 1e6)

    def pop3(self, targets: list[loads.Target]) -> None:
        s = self.scale
        # POP3 reads INBOX: start it empty of earlier loads so both sides hold the same.
        for t in targets:
            for sub in ("new", "cur"):
                for e in os.scandir(t.inbox / sub):
                    os.unlink(e.path)
        for t in targets:
            (t.inbox / "new").mkdir(parents=True, exist_ok=True)
            for name, data in maildir_files(s.pop3_count, 4000, to=t.user):
                (t.inbox / "new" / name.split(":")[0]).write_bytes(data)
            if t.name != "pillarbox":
                _chown_nobody(t.inbox)
        for _ in range(s.runs):
            for t in targets:
                rate, mbps = loads.pop3_download(t, s.pop3_count)
                getattr(self.metric("POP3 download messages/s", "msg/s", True), _side(t)).append(
                    rate
                )
                getattr(self.metric("POP3 download MB/s", "MB/s", True), _side(t)).append(mbps)

    def memory(self, targets: list[loads.Target]) -> None:
        time.sleep(2)
        for t in targets:
            getattr(self.metric("Idle RSS, mail daemon(s)", "MB", False), _side(t)).append(
                rss(t.pids()) / 1e6
            )
        # The web UI has no counterpart in Postfix/Dovecot: its reference is an idle bare
        # python3 process, so the ratio is what Flask, the app and cheroot add.
        metric = self.metric("Idle RSS, web UI (ref: bare python3)", "MB", False)
        for _ in range(self.scale.runs):
            metric.pillarbox.append(self._idle_rss([sys.executable, "-m", "webui"], web=True))
            metric.reference.append(
                self._idle_rss([sys.executable, "-c", "import time; time.sleep(120)"], web=False)
            )

    def migrate(self, targets: list[loads.Target]) -> None:
        from bench.migrate import run_suite

        def record(name: str, ours: float, ref: float) -> None:
            metric = self.metric(f"{name}: messages/s", "msg/s", True)
            metric.pillarbox.append(ours)
            metric.reference.append(ref)

        pb, ref = targets
        work = self.root / "import"
        s = self.scale
        run_suite(pb, ref, self.pillarbox_cfg, s.mailboxes[0], s.runs, work, record)

    def _idle_rss(self, argv: list[str], web: bool) -> float:
        cfg = self.pillarbox_cfg
        args = [*argv, "--config", str(cfg.source)] if web else argv
        proc = subprocess.Popen(
            args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            if web:
                addr = cfg.listeners.web[0]
                wait_port(addr.host, addr.port, timeout=60)
                with urllib.request.urlopen(f"http://{addr}/setup/", timeout=30) as r:
                    r.read()  # one page rendered: templates compiled, as after real use
            time.sleep(3)
            return rss([proc.pid]) / 1e6
        finally:
            proc.terminate()
            proc.wait(20)


def _side(t: loads.Target) -> str:
    return "pillarbox" if t.name == "pillarbox" else "reference"


def _chown_nobody(path: Path) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chown(dirpath, nobody.pw_uid, nobody.pw_gid)
        for n in filenames:
            os.chown(os.path.join(dirpath, n), nobody.pw_uid, nobody.pw_gid)


# ------------------------------------------------------------------ report


def table(metrics: list[Metric]) -> str:
    rows = [("figure", "Pillarbox", "reference", "ratio", "")]
    for m in metrics:
        r = m.ratio()
        pb = statistics.median(m.pillarbox) if m.pillarbox else float("nan")
        ref = statistics.median(m.reference) if m.reference else float("nan")
        better = ""
        if r is not None:
            good = r >= 1 if m.higher_is_better else r <= 1
            better = "better" if good else "worse"
        rows.append(
            (
                m.name,
                f"{pb:.3g} {m.unit}",
                f"{ref:.3g} {m.unit}",
                "-" if r is None else f"{r:.2f}",
                better,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def chart(metrics: list[Metric], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ms = [m for m in metrics if m.ratio() is not None]
    # Normalise so > 1 always means Pillarbox is better.
    vals = [(m.ratio() or 0) if m.higher_is_better else 1 / (m.ratio() or 1) for m in ms]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(ms) + 1.5))
    ax.barh([m.name for m in ms], vals, color=["#2e7d32" if v >= 1 else "#c62828" for v in vals])
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("Pillarbox relative to Postfix/Dovecot (> 1 = Pillarbox better)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


@contextmanager
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pillarbox-bench-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small counts, one run")
    p.add_argument(
        "--only",
        default="smtp,imap,pop3,memory,import",
        help="comma-separated suites (smtp, imap, pop3, memory, import)",
    )
    p.add_argument("--runs", type=int, default=None, help="runs per figure (median)")
    args = p.parse_args(argv)
    scale = QUICK if args.quick else FULL
    if args.runs:
        scale = Scale(**{**asdict(scale), "runs": args.runs})
    suites = {s.strip() for s in args.only.split(",") if s.strip()}
    for tool in ("smtp-source", "postfix", "dovecot"):
        if not shutil.which(tool):
            print(
                f"bench: {tool} is missing (make bench installs postfix and dovecot)",
                file=sys.stderr,
            )
            return 1
    # SIGTERM (a timeout, Ctrl-C from make) unwinds like an exception: the private Postfix,
    # Dovecot and Pillarbox instances are stopped and the work directory removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.time()
    failed = ""
    with workdir() as root:
        bench = Bench(root, scale)
        with bench.stack:
            targets = [bench.start_pillarbox(), bench.start_reference()]
            steps: dict[str, Callable[[list[loads.Target]], None]] = {
                "memory": bench.memory,
                "smtp": bench.smtp,
                "imap": bench.imap,
                "pop3": bench.pop3,
                "import": bench.migrate,
            }
            for name, step in steps.items():
                if name in suites:
                    print(f"== {name}", flush=True)
                    try:
                        step(targets)
                    except Exception as exc:  # keep what was measured; say what broke
                        failed = f"{name}: {exc!r}"
                        print(f"bench: {failed}", file=sys.stderr, flush=True)
                        break
    metrics = list(bench.metrics.values())
    print()
    print(table(metrics))
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    doc: dict[str, Any] = {
        "started": stamp,
        "seconds": round(time.time() - started, 1),
        "scale": asdict(scale),
        "reference": "postfix 3.7 + dovecot 2.3 (Debian 12)",
        "incomplete": failed or None,
        "metrics": [{**asdict(m), "ratio": m.ratio()} for m in metrics],
    }
    for name in (f"{stamp}.json", "latest.json"):
        (RESULTS / name).write_text(json.dumps(doc, indent=2) + "\n")
    if chart(metrics, RESULTS / "latest.png"):
        print(f"\nchart: {RESULTS / 'latest.png'}")
    print(f"results: {RESULTS / 'latest.json'}")
    if failed:
        print(f"bench: incomplete, stopped at {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
