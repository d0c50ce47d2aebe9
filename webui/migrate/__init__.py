""" "Bring your old mail": import from another provider, follow its progress, and download
a user's mail as a tar of Maildir (streamed, never built in memory).

Everything goes through the daemon's ctl socket (``migrate_*`` commands of
appliance.migrate.service): the web UI runs unprivileged and never reads Maildir. The
old provider's password goes to the daemon with the start command and is not stored.
Pages live under ``/migrate/``; ``?wizard=1`` shows the page as the setup wizard's step.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import re
from collections.abc import Iterator
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.wrappers import Response

from appliance.ctl.protocol import CtlError
from appliance.dns import DnsError
from webui.context import web
from webui.migrate.presets import PRESETS

log = logging.getLogger(__name__)

bp = Blueprint(
    "migrate",
    __name__,
    url_prefix="/migrate",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

_FOLDER_MAP_LINE = re.compile(r"^\s*(.+?)\s*=\s*(.+?)\s*$")


def call(cmd: str, **args: Any) -> tuple[Any, str]:
    try:
        return web().ctl().call(cmd, **args), ""
    except CtlError as exc:
        return None, str(exc)


def users() -> list[str]:
    return [u.email for u in web().accounts.list_users() if not u.disabled]


@bp.route("/")
def page() -> str:
    status, error = call("migrate_status")
    jobs = (status or {}).get("jobs", [])
    return render_template(
        "migrate/page.html",
        presets=PRESETS,
        users=users(),
        jobs=jobs,
        running=bool((status or {}).get("running")),
        error=error,
        wizard=request.args.get("wizard") == "1",
        form=request.args,
        mine=False,
        urls={
            "start": url_for("migrate.start"),
            "cancel": url_for("migrate.cancel"),
            "status": url_for("migrate.status_json"),
        },
    )


@bp.route("/status.json")
def status_json() -> Response:
    status, error = call("migrate_status")
    if status is None:
        return jsonify({"error": error, "jobs": [], "running": False})
    return jsonify(status)


def _folder_map(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _FOLDER_MAP_LINE.match(line)
        if m is None:
            raise ValueError(f"folder map line {line.strip()!r}: use OLD = NEW")
        out[m.group(1)] = m.group(2)
    return out


SELF_SERVICE_PORTS = (993, 143)


def _loopback(host: str) -> bool:
    """The host is this box: a loopback address, "localhost", or a name whose A/AAAA
    records (the web UI's resolver) are loopback."""
    name = host.strip().rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        pass
    values: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            values += web().resolver.lookup(name, rdtype)
        except DnsError:
            continue  # no such name, or no answer: the daemon reports a host it cannot reach
    return any(_is_loopback_ip(v) for v in values)


def _is_loopback_ip(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def start_from_form(user: str, back: str, *, restricted: bool = False) -> Response:
    """Validate the form and start an import into ``user`` (the caller decided who).
    ``restricted`` (a user's own page): only the IMAP ports and no host on the box itself,
    so the form cannot be used to probe the box's own services."""
    f = request.form
    security = f.get("security", "tls")
    if security not in ("tls", "starttls"):
        flash("Choose SSL/TLS or STARTTLS.", "error")
        return redirect(back)
    host, login = f.get("host", "").strip(), f.get("login", "").strip()
    password = f.get("password", "")
    preset = next((p for p in PRESETS if p.key == f.get("preset")), None)
    if not host and preset is not None and preset.host:  # the form without JavaScript
        host, security = preset.host, preset.security
    port_text = f.get("port", "").strip() or ("993" if security == "tls" else "143")
    if not host or not login or not password or not port_text.isdigit():
        flash("Fill in the server, port, login and password of the old mailbox.", "error")
        return redirect(back)
    if restricted and (int(port_text) not in SELF_SERVICE_PORTS or _loopback(host)):
        flash("Use your old provider's IMAP server on port 993 or 143.", "error")
        return redirect(back)
    try:
        fmap = _folder_map(f.get("folder_map", ""))
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(back)
    gmail = f.get("gmail_all_mail", "dedupe")
    result, error = call(
        "migrate_start",
        kind="imap",
        user=user,
        host=host,
        port=int(port_text),
        security=security,
        login=login,
        password=password,
        folder_map=fmap,
        gmail_all_mail=gmail if gmail in ("dedupe", "skip") else "dedupe",
    )
    if result is None:
        flash(f"The import did not start: {error}", "error")
        return redirect(back)
    log.info("web=migrate-start job=%s user=%s host=%s", result["job_id"], user, host)
    flash("The import started. You can leave this page; it goes on in the box.", "ok")
    return redirect(back + ("&" if "?" in back else "?") + f"job={result['job_id']}")


@bp.route("/start", methods=["POST"])
def start() -> Response:
    wizard = request.form.get("wizard") == "1"
    back = url_for("migrate.page", wizard="1") if wizard else url_for("migrate.page")
    user = request.form.get("user", "").strip().lower()
    if user not in users():
        flash("Choose one of this box's mailboxes to copy the mail into.", "error")
        return redirect(back)
    return start_from_form(user, back)


@bp.route("/cancel", methods=["POST"])
def cancel() -> Response:
    _, error = call("migrate_cancel", job_id=request.form.get("job_id", ""))
    flash(error or "The import stops after the current batch.", "error" if error else "ok")
    return redirect(url_for("migrate.page"))


def archive_response(user: str) -> Response:
    """The user's mail as a tar of Maildir, streamed block by block from the daemon."""
    name = re.sub(r"[^A-Za-z0-9._@-]", "_", user)
    return Response(
        stream_with_context(_archive(user)),
        mimetype="application/x-tar",
        headers={
            "Content-Disposition": f'attachment; filename="{name}-mail.tar"',
            "Cache-Control": "no-store",
        },
    )


def _archive(user: str) -> Iterator[bytes]:
    """The daemon's tar stream, block by block (each block one ctl answer)."""
    ctl = web().ctl()
    token = ""
    while True:
        try:
            reply = ctl.call("migrate_export", **({"token": token} if token else {"user": user}))
        except CtlError as exc:
            log.warning("web=export-broken user=%s reason=%s", user, exc)
            return  # the download ends short; the browser reports it as failed
        token = reply["token"]
        block = base64.b64decode(reply["data"])
        if block:
            yield block
        if reply["done"]:
            return


@bp.route("/download/<email>")
def download(email: str) -> Response:
    user = email.strip().lower()
    if user not in users():
        abort(404)
    return archive_response(user)
