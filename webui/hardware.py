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
from webui.helper import HelperError
from webui.security import current_user

log = logging.getLogger(__name__)

bp = Blueprint("hardware", __name__)

Page = Response | str | tuple[str, int]


@bp.route("/hardware")
def sizing_page() -> str:
    ctx = web()
    cfg = ctx.config()
    hw = ctx.measure(cfg.mail_dir)
    return render_template(
        "hardware.html", hw=hw, rec=sizing.recommend(hw), limits=cfg.limits, human=sizing.human
    )


@bp.route("/hardware/accept", methods=["POST"])
def sizing_accept() -> Response:
    ctx = web()
    rec = sizing.recommend(ctx.measure(ctx.config().mail_dir))
    try:
        configedit.update(
            ctx.config_path,
            limits={
                "max_message_size": rec.max_message_size,
                "max_connections": rec.max_connections,
                "max_connections_per_ip": rec.max_connections_per_ip,
                "default_quota": rec.quota,
            },
        )
    except config.ConfigError as exc:
        flash(f"Not saved: {exc}", "error")
        return redirect(url_for("hardware.sizing_page"))
    log.info("web=sizing-accepted by=%s", current_user())
    flash("Recommended limits saved. " + configedit.reload_daemon(ctx), "ok")
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
            raise RuntimeError(f"Health check failed: {exc}") from None
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
            raise RuntimeError(f"Formatting failed: {exc}") from None
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
            raise RuntimeError(f"Mounting failed: {exc}") from None
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
