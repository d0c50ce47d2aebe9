"""Hardware sizing and storage pages; long disk work runs as background jobs."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance import config
from webui import configedit, sizing
from webui.context import web
from webui.disks import Disk
from webui.helper import HelperError, in_words
from webui.security import current_user

log = logging.getLogger(__name__)

bp = Blueprint("hardware", __name__)

Page = Response | str | tuple[str, int]


def _recommendation() -> sizing.Sizing:
    ctx = web()
    return sizing.recommend(ctx.measure(ctx.config().mail_dir), len(ctx.accounts.list_users()))


@bp.route("/hardware")
def sizing_page() -> str:
    ctx = web()
    cfg = ctx.config()
    hw = ctx.measure(cfg.mail_dir)
    return render_template(
        "hardware.html",
        hw=hw,
        rec=_recommendation(),
        limits=cfg.limits,
        filters=cfg.filters,
        human=sizing.human,
        rspamd_ram=sizing.RSPAMD_RAM,
        clamav_ram=sizing.CLAMAV_RAM,
        plan_min=sizing.PLAN_MIN,
    )


def _save_limits(values: dict[str, int], said: str) -> Response:
    ctx = web()
    try:
        configedit.update(ctx.config_path, limits=values)
    except config.ConfigError as exc:
        log.warning("web=limits-invalid error=%s", exc)
        flash("Not saved: the box refused these values.", "error")
        return redirect(url_for("hardware.sizing_page"))
    log.info("web=limits-saved keys=%s by=%s", ",".join(values), current_user())
    flash(said + " " + configedit.reload_daemon(ctx), "ok")
    return redirect(url_for("hardware.sizing_page"))


@bp.route("/hardware/accept", methods=["POST"])
def sizing_accept() -> Response:
    """The connection and message limits; the storage per mailbox is its own button."""
    rec = _recommendation()
    return _save_limits(
        {
            "max_message_size": rec.max_message_size,
            "max_connections": rec.max_connections,
            "max_connections_per_ip": rec.max_connections_per_ip,
        },
        "Recommended limits saved.",
    )


@bp.route("/hardware/quota", methods=["POST"])
def sizing_quota() -> Response:
    """The default storage per new mailbox, set only to the value the button showed."""
    value = request.form.get("quota", "")
    if not value.isdigit() or int(value) > 1 << 50:
        flash("Choose the storage per mailbox with its button.", "error")
        return redirect(url_for("hardware.sizing_page"))
    quota = int(value)
    return _save_limits(
        {"default_quota": quota},
        f"Mailboxes without a limit of their own now get {sizing.human(quota)}.",
    )


@bp.route("/hardware/filters", methods=["POST"])
def sizing_filters() -> Response:
    """Switch the spam filter (rspamd) and the virus scanner (ClamAV) on or off."""
    ctx = web()
    wanted = {name: request.form.get(name) == "on" for name in ("rspamd", "clamav")}
    try:
        configedit.update(ctx.config_path, filters=wanted)
    except config.ConfigError as exc:
        log.warning("web=filters-invalid error=%s", exc)
        flash("Not saved: the box refused these settings.", "error")
        return redirect(url_for("hardware.sizing_page"))
    log.info("web=filters-set rspamd=%s clamav=%s by=%s", *wanted.values(), current_user())
    state = ", ".join(
        f"{label} {'on' if wanted[key] else 'off'}"
        for key, label in (("rspamd", "spam filter"), ("clamav", "virus scanner"))
    )
    flash(f"Saved: {state}. " + configedit.reload_daemon(ctx), "ok")
    return redirect(url_for("hardware.sizing_page"))


def _disk(name: str) -> Disk:
    disk = next((d for d in web().disks() if d.name == name), None)
    if disk is None:
        abort(404, description="That disk is no longer attached.")
    return disk


@bp.route("/storage")
def storage() -> str:
    ctx = web()
    cfg = ctx.config()
    return render_template(
        "storage.html", disks=ctx.disks(), mail_dir=cfg.mail_dir, human=sizing.human, errors={}
    )


@bp.route("/storage/<name>/smart", methods=["POST"])
def smart(name: str) -> Response:
    ctx = web()
    disk = _disk(name)
    helper = ctx.helper

    def work(progress: Any) -> dict[str, Any]:
        progress(f"Reading the health report of {disk.path}…")
        try:
            reply = helper.call("smart", device=disk.path)
        except HelperError as exc:
            if "could not be run" in str(exc) or "gave no answer" in str(exc):
                raise RuntimeError("Disk health isn't available on this machine.") from None
            if disk.bus == "usb" and str(exc).startswith("smartctl"):
                raise RuntimeError(
                    f"{disk.path}: this USB bridge hides SMART, so its health can't be read."
                ) from None
            raise RuntimeError(in_words(exc, f"read the health of {disk.path}")) from None
        data = reply.get("smart") or {}
        passed = data.get("passed")
        verdict = {True: "healthy", False: "FAILING - replace it soon", None: "unknown"}[passed]
        details = []
        if data.get("temperature") is not None:
            details.append(f"temperature {data['temperature']} °C")
        if data.get("power_on_hours") is not None:
            details.append(f"{data['power_on_hours']} hours in use")
        extra = f" ({', '.join(details)})" if details else ""
        return {"message": f"{disk.path} health: {verdict}{extra}.", "smart": data}

    job = ctx.jobs.start(f"Health check of {disk.path}", work, back=url_for("hardware.storage"))
    return redirect(url_for("hardware.job_page", job_id=job.id))


@bp.route("/storage/<name>/format", methods=["POST"])
def format_disk(name: str) -> Page:
    ctx = web()
    disk = _disk(name)
    typed = request.form.get("confirm", "").strip()
    error = ""
    if disk.holds_system:
        error = "This disk holds the system itself and cannot be used for mail."
    elif disk.in_use:
        error = "This disk is in use. Unplug it and plug it back in, or choose another."
    elif typed != disk.name:
        error = f"Type {disk.name} exactly to confirm that everything on it may be erased."
    if error:
        return render_template(
            "storage.html",
            disks=ctx.disks(),
            mail_dir=ctx.config().mail_dir,
            human=sizing.human,
            errors={disk.name: error},
        ), 400
    helper = ctx.helper
    log.info("web=disk-format device=%s by=%s", disk.path, current_user())

    def work(progress: Any) -> dict[str, Any]:
        progress(f"Erasing and formatting {disk.path}. This can take a few minutes…")
        try:
            made = helper.call(
                "disk.format", device=disk.path, confirm=f"ERASE {disk.name}", label="pillarbox"
            )
            progress("Mounting the new disk for mail…")
            mounted = helper.call("disk.mount", uuid=made["uuid"])
        except HelperError as exc:
            raise RuntimeError(in_words(exc, f"prepare {disk.path}")) from None
        return {
            "message": f"{disk.path} is ready and holds your mail from now on "
            f"(mounted at {mounted.get('mountpoint')}).",
            "uuid": made["uuid"],
        }

    job = ctx.jobs.start(f"Preparing {disk.path} for mail", work, back=url_for("hardware.storage"))
    return redirect(url_for("hardware.job_page", job_id=job.id))


@bp.route("/storage/<name>/mount", methods=["POST"])
def mount(name: str) -> Response:
    ctx = web()
    disk = _disk(name)
    if disk.fstype != "ext4" or not disk.uuid or disk.in_use:
        flash("Only an unused disk prepared by this box (ext4) can be mounted for mail.", "error")
        return redirect(url_for("hardware.storage"))
    helper = ctx.helper

    def work(progress: Any) -> dict[str, Any]:
        progress(f"Mounting {disk.path}…")
        try:
            mounted = helper.call("disk.mount", uuid=disk.uuid)
        except HelperError as exc:
            raise RuntimeError(in_words(exc, f"mount {disk.path}")) from None
        return {"message": f"{disk.path} is mounted at {mounted.get('mountpoint')}."}

    job = ctx.jobs.start(f"Mounting {disk.path}", work, back=url_for("hardware.storage"))
    return redirect(url_for("hardware.job_page", job_id=job.id))


@bp.route("/jobs/<job_id>")
def job_page(job_id: str) -> str:
    job = web().jobs.get(job_id)
    if job is None:
        abort(404)
    return render_template("job.html", job=job)


@bp.route("/jobs/<job_id>.json")
def job_json(job_id: str) -> Response:
    job = web().jobs.get(job_id)
    if job is None:
        abort(404)
    return jsonify(job.as_json())
