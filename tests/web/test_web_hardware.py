"""Sizing recommendations, storage actions through the root helper, background jobs."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from appliance.accounts import Accounts
from tests.web.web_helpers import SPARE, Env, post
from webui import sizing
from webui.jobs import JobRunner
from webui.sizing import GiB, Hardware, MiB


def hw(ram_gib: float, cpus: int = 4, free_gib: float = 500) -> Hardware:
    return Hardware(
        cpus=cpus,
        ram=int(ram_gib * GiB),
        disk_path="/",
        disk_total=1000 * GiB,
        disk_free=int(free_gib * GiB),
    )


@pytest.mark.parametrize(
    ("ram", "mailboxes", "conns", "rspamd", "clamav", "msg_mib"),
    [
        (0.5, 10, 100, False, False, 25),
        (1, 25, 200, True, False, 25),
        (2, 50, 500, True, False, 50),
        (4, 150, 1000, True, True, 50),
        (16, 500, 2000, True, True, 50),
    ],
)
def test_recommendation_tiers(
    ram: float, mailboxes: int, conns: int, rspamd: bool, clamav: bool, msg_mib: int
) -> None:
    rec = sizing.recommend(hw(ram))
    assert (rec.mailboxes, rec.max_connections, rec.rspamd, rec.clamav) == (
        mailboxes,
        conns,
        rspamd,
        clamav,
    )
    assert rec.max_message_size == msg_mib * MiB


def test_quota_shares_four_fifths_of_free_disk() -> None:
    rec = sizing.recommend(hw(4, free_gib=750))  # 150 mailboxes
    assert rec.quota == 4 * GiB  # 600 GiB / 150
    tiny = sizing.recommend(hw(4, free_gib=1))
    assert tiny.quota == 100 * MiB


def test_single_core_halves_connections() -> None:
    assert sizing.recommend(hw(4, cpus=1)).max_connections == 500


def test_measure_reads_this_machine(tmp_path: object) -> None:
    from pathlib import Path

    real = sizing.measure(Path("/nonexistent/mail/dir"))
    assert real.cpus >= 1 and real.ram > 0 and real.disk_total > 0 and real.disk_path == "/"


def test_human() -> None:
    assert sizing.human(512) == "512 bytes"
    assert sizing.human(1536 * MiB) == "1.5 GB"


def test_sizing_page_and_accept(admin: FlaskClient, env: Env) -> None:
    body = admin.get("/hardware").get_data(as_text=True)
    assert "up to 150" in body and "4.0 GB" in body
    before = env.cfg.limits.default_quota
    r = post(admin, "/hardware/accept", {}, form_page="/hardware")
    assert r.status_code == 302
    limits = env.cfg.limits
    rec = sizing.recommend(env.hw)
    assert (limits.max_connections, limits.max_connections_per_ip, limits.max_message_size) == (
        rec.max_connections,
        rec.max_connections_per_ip,
        rec.max_message_size,
    )
    assert limits.default_quota == before  # issue 19: never changed by this button
    assert "reload" in env.ctl.calls


def test_quota_advice_follows_the_real_mailboxes_and_is_applied_only_explicitly(
    admin: FlaskClient, env: Env
) -> None:
    """Issue 19: one mailbox on a 77 GB disk was offered 100 MB "for up to 500
    mailboxes". Now the disk is shared by twice today's mailboxes (at least 5), and the
    value is written only by its own button, with the value shown on it."""
    env.hw = sizing.Hardware(
        cpus=4, ram=16 * GiB, disk_path="/srv", disk_total=80 * GiB, disk_free=77 * GiB
    )
    users = len(Accounts(env.cfg.accounts_db).list_users())
    rec = sizing.recommend(env.hw, users)
    assert rec.planned == max(2 * users, 5) and rec.quota >= 10 * GiB
    body = admin.get("/hardware").get_data(as_text=True)
    assert f"Use {sizing.human(rec.quota)} per mailbox" in body
    assert f"among {rec.planned} mailboxes" in body and "up to 500" in body
    before = env.cfg.limits.default_quota
    post(admin, "/hardware/accept", {}, form_page="/hardware")
    assert env.cfg.limits.default_quota == before
    r = post(admin, "/hardware/quota", {"quota": str(rec.quota)}, form_page="/hardware")
    assert r.status_code == 302 and env.cfg.limits.default_quota == rec.quota
    r = post(admin, "/hardware/quota", {"quota": "lots"}, form_page="/hardware")
    assert env.cfg.limits.default_quota == rec.quota


def test_filter_switches_show_memory_and_save(admin: FlaskClient, env: Env) -> None:
    body = admin.get("/hardware").get_data(as_text=True)
    assert "Spam filter (rspamd)</strong>: needs about 1.0 GB" in body
    assert "Virus scanner (ClamAV)</strong>: needs about 3.0 GB" in body
    assert "webmail" not in body.lower()
    r = post(admin, "/hardware/filters", {"rspamd": "on"}, form_page="/hardware")
    assert r.status_code == 302
    assert (env.cfg.filters.rspamd, env.cfg.filters.clamav) == (True, False)
    post(admin, "/hardware/filters", {"clamav": "on"}, form_page="/hardware")
    assert (env.cfg.filters.rspamd, env.cfg.filters.clamav) == (False, True)


def test_storage_page_lists_disks(admin: FlaskClient) -> None:
    body = admin.get("/storage").get_data(as_text=True)
    assert "Spare SSD" in body and "/dev/sdb" in body
    assert "holds the system" in body
    assert body.count("Erase and prepare for mail") == 1  # not offered for the system disk


def _wait(app_client: FlaskClient, location: str) -> dict[str, object]:
    runner: JobRunner = app_client.application.extensions["pillarbox"].jobs
    job_id = location.rsplit("/", 1)[1]
    job = runner.wait(job_id, 30)
    assert job is not None and job.state != "running"
    data = app_client.get(f"/jobs/{job_id}.json").get_json()
    assert isinstance(data, dict)
    return data


def test_format_wrong_confirmation_runs_nothing(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/storage/sdb/format", {"confirm": "sda"}, form_page="/storage")
    assert r.status_code == 400
    assert "Type sdb exactly" in r.get_data(as_text=True)
    assert env.helper_commands() == []


def test_format_system_disk_refused(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/storage/sda/format", {"confirm": "sda"}, form_page="/storage")
    assert r.status_code == 400
    assert "holds the system" in r.get_data(as_text=True)
    assert env.helper_commands() == []


def test_format_unknown_disk_404(admin: FlaskClient) -> None:
    r = post(admin, "/storage/sdz/format", {"confirm": "sdz"}, form_page="/storage")
    assert r.status_code == 404


def test_format_runs_in_background_with_progress(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/storage/sdb/format", {"confirm": "sdb"}, form_page="/storage")
    assert r.status_code == 302 and "/jobs/" in r.location
    page = admin.get(r.location).get_data(as_text=True)
    assert "Preparing /dev/sdb for mail" in page and "job.js" in page
    data = _wait(admin, r.location)
    assert data["state"] == "done", data
    assert "ready and holds your mail" in str(data["message"])
    commands = env.helper_commands()
    assert ["wipefs", "--all", "/dev/sdb"] in commands
    assert commands[1][0] == "mkfs.ext4" and commands[1][-1] == "/dev/sdb"
    assert [
        "mount",
        "-o",
        "noatime",
        "UUID=00000000-0000-4000-8000-000000000000",
        "/var/lib/pillarbox/mail",
    ] in commands


def test_smart_job(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/storage/sdb/smart", {}, form_page="/storage")
    data = _wait(admin, r.location)
    assert data["state"] == "done"
    assert "/dev/sdb health" in str(data["message"])
    assert ["smartctl", "--json", "-a", "/dev/sdb"] in env.helper_commands()


def test_mount_only_prepared_disks(admin: FlaskClient, env: Env) -> None:
    r = post(admin, "/storage/sdb/mount", {}, form_page="/storage")
    assert r.status_code == 302 and r.location.endswith("/storage")
    assert env.helper_commands() == []
    from dataclasses import replace

    env.disks[1] = replace(SPARE, fstype="ext4", uuid="0a1b2c3d-1111-2222-3333-444455556666")
    r = post(admin, "/storage/sdb/mount", {}, form_page="/storage")
    data = _wait(admin, r.location)
    assert data["state"] == "done"
    assert [
        "mount",
        "-o",
        "noatime",
        "UUID=0a1b2c3d-1111-2222-3333-444455556666",
        "/var/lib/pillarbox/mail",
    ] in env.helper_commands()


def test_failed_job_reports_helper_error(admin: FlaskClient, env: Env) -> None:
    from dataclasses import replace

    # A name the helper's pattern refuses: the web side passes it, the helper says no.
    env.disks.append(replace(SPARE, name="loopy", path="/dev/loopy"))
    r = post(admin, "/storage/loopy/smart", {}, form_page="/storage")
    data = _wait(admin, r.location)
    assert data["state"] == "failed"
    assert "whole disk" in str(data["message"])


def test_job_unknown_404(admin: FlaskClient) -> None:
    assert admin.get("/jobs/nope").status_code == 404
    assert admin.get("/jobs/nope.json").status_code == 404


def test_job_json_needs_sign_in(admin: FlaskClient) -> None:
    r = post(admin, "/storage/sdb/smart", {}, form_page="/storage")
    anon = admin.application.test_client()
    assert anon.get(r.location + ".json").status_code == 302


@pytest.mark.parametrize(
    ("action", "command"),
    [("reboot", ["systemctl", "reboot"]), ("shutdown", ["systemctl", "poweroff"])],
)
def test_power_buttons(admin: FlaskClient, env: Env, action: str, command: list[str]) -> None:
    r = post(admin, "/system/power", {"action": action}, form_page="/")
    assert r.status_code == 302
    assert env.helper_commands() == [command]


def test_power_unknown_action(admin: FlaskClient, env: Env) -> None:
    post(admin, "/system/power", {"action": "explode"}, form_page="/")
    assert env.helper_commands() == []


def test_jobs_runner_bounds_memory() -> None:
    runner = JobRunner()
    ids = [runner.start("t", lambda progress: {"message": "ok"}).id for _ in range(120)]
    for job_id in ids:
        runner.wait(job_id, 5)
    assert runner.get(ids[-1]) is not None
    assert len(runner._jobs) <= 100
