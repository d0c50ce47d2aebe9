""" "Bring your old mail" for the signed-in user's own mailbox (the self-service area).

Every view acts on the session's user (``current_user()``) and takes no address from
the request: the import goes into, the progress shows and the download holds only the
signed-in user's mailbox. Pages live under ``/me/old-mail/``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from webui.migrate import archive_response, call, start_from_form
from webui.migrate.presets import PRESETS
from webui.security import current_user

bp = Blueprint(
    "me_migrate",
    __name__,
    url_prefix="/me/old-mail",
    template_folder="templates",
    static_folder="static",  # the same files as the admin page's, reachable by every user
    static_url_path="/static",
)


def _me() -> str:
    email = current_user()
    if not email:
        abort(403)
    return email


def _my_jobs() -> tuple[list[dict[str, Any]], bool, str]:
    status, error = call("migrate_status", user=_me())
    status = status or {}
    jobs = [j for j in status.get("jobs", []) if j.get("user") == _me()]
    running = any(j.get("status") == "running" for j in jobs)
    return jobs, running or bool(status.get("running")), error


@bp.route("/")
def page() -> str:
    jobs, running, error = _my_jobs()
    return render_template(
        "migrate/mine.html",
        presets=PRESETS,
        users=[_me()],
        jobs=jobs,
        running=running,
        error=error,
        wizard=False,
        form=request.args,
        mine=True,
        urls={
            "start": url_for("me_migrate.start"),
            "cancel": url_for("me_migrate.cancel"),
            "status": url_for("me_migrate.status_json"),
        },
    )


@bp.route("/status.json")
def status_json() -> Response:
    jobs, running, error = _my_jobs()
    return jsonify({"jobs": jobs, "running": running, "error": error})


@bp.route("/start", methods=["POST"])
def start() -> Response:
    return start_from_form(_me(), url_for("me_migrate.page"), restricted=True)


@bp.route("/cancel", methods=["POST"])
def cancel() -> Response:
    job_id = request.form.get("job_id", "")
    jobs, _, _ = _my_jobs()
    if not any(j["job_id"] == job_id for j in jobs):
        abort(404)
    _, error = call("migrate_cancel", job_id=job_id)
    flash(error or "The import stops after the current batch.", "error" if error else "ok")
    return redirect(url_for("me_migrate.page"))


@bp.route("/download")
def download() -> Response:
    return archive_response(_me())
