"""The signed-in user's own mail settings: vacation reply, forwarding, simple filter
rules, storage use per folder, and emptying Junk and Trash.

Every view acts on ``current_user()`` alone: no URL or form field names a mailbox, so
nobody reaches another user's settings. The settings are the user's Sieve script
(appliance.filters.sieve_settings renders and reads it); the daemon owns the scripts and
the mail, so everything goes through the ctl socket (sieve.*, mailbox.*).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.ctl.protocol import CtlError
from appliance.filters.sieve_settings import (
    ACTIONS,
    FIELDS,
    MAX_BODY,
    MAX_DAYS,
    MAX_FORWARDS,
    MAX_RULES,
    Forwarding,
    MailSettings,
    Rule,
    UserScript,
    Vacation,
    check,
    read,
    render,
)
from webui.context import web
from webui.security import current_user

log = logging.getLogger(__name__)

bp = Blueprint("me_mail", __name__, url_prefix="/me/mail")

Page = Response | str | tuple[str, int]
EMPTYABLE = {"junk": "\\Junk", "trash": "\\Trash"}
DOWN = "The mail service is not answering right now. Try again in a minute."


def _user() -> str:
    user = current_user()
    if user is None:  # before_request signs everyone in first; this is a second lock
        abort(403)
    return user


def _call(cmd: str, **args: Any) -> Any:
    try:
        return web().ctl().call(cmd, **args)
    except CtlError as exc:
        log.error("web=ctl-failed cmd=%s user=%s error=%s", cmd, current_user(), exc)
        abort(503, description=DOWN)


def _script(user: str) -> UserScript:
    answer = _call("sieve.get", user=user)
    if not isinstance(answer, dict) or "script" not in answer:
        abort(503, description=DOWN)
    script = answer["script"]
    return read(script if isinstance(script, str) else None)


def _save(user: str, current: UserScript, settings: MailSettings) -> str:
    """Store ``settings`` in the user's script; returns an error text ("" when saved)."""
    if settings == MailSettings() and not current.has_own_text:
        _call("sieve.delete", user=user)  # nothing set and nothing of their own: no script
        return ""
    answer = _call("sieve.save", user=user, script=render(current, settings))
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else answer
        log.error("web=sieve-save-failed user=%s error=%s", user, error)
        return "The settings could not be saved."
    log.info("web=mail-settings-saved user=%s", user)
    return ""


def _usage(user: str) -> dict[str, Any]:
    answer = _call("mailbox.usage", user=user)
    if not isinstance(answer, dict):
        abort(503, description=DOWN)
    return answer


def _folders(user: str) -> list[str]:
    return [str(f["name"]) for f in _usage(user).get("folders", [])]


# ------------------------------------------------------------------ storage


@bp.route("/")
def usage() -> Page:
    user = _user()
    info = _usage(user)
    folders = sorted(info.get("folders", []), key=lambda f: (f["name"] != "INBOX", f["name"]))
    quota = int(info.get("quota", 0))
    used = int(info.get("bytes", 0))
    percent = min(100, round(100 * used / quota)) if quota else 0
    emptyable = {
        kind: next((f for f in folders if f.get("special_use") == use), None)
        for kind, use in EMPTYABLE.items()
    }
    return render_template(
        "me/mail.html",
        folders=folders,
        used=used,
        messages=int(info.get("messages", 0)),
        quota=quota,
        percent=percent,
        emptyable=emptyable,
    )


def _emptyable_folder(user: str, kind: str) -> dict[str, Any]:
    use = EMPTYABLE.get(kind)
    if use is None:
        abort(404)
    found = next((f for f in _usage(user).get("folders", []) if f.get("special_use") == use), None)
    if found is None:
        abort(404)
    return dict(found)


@bp.route("/empty/<kind>", methods=["GET", "POST"])
def empty(kind: str) -> Page:
    user = _user()
    folder = _emptyable_folder(user, kind)
    if request.method == "POST":
        answer = _call("mailbox.empty", user=user, mailbox=folder["name"])
        deleted = int(answer.get("deleted", 0)) if isinstance(answer, dict) else 0
        log.info(
            "web=mailbox-emptied user=%s mailbox=%s messages=%s", user, folder["name"], deleted
        )
        plural = "" if deleted == 1 else "s"
        flash(f"{folder['name']} is empty: {deleted} message{plural} deleted.", "ok")
        return redirect(url_for("me_mail.usage"))
    return render_template("me/mail_empty.html", folder=folder, kind=kind)


# ------------------------------------------------------------------ vacation


def _int(text: str, default: int) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default


def _aliases(user: str) -> tuple[str, ...]:
    """The addresses whose mail comes to ``user`` (catch-alls left out): replies are
    sent for mail to them too, as of the last save."""
    found = web().accounts.list_aliases()
    return tuple(sorted(a.source for a in found if a.target == user and "@" in a.source[1:]))


@bp.route("/vacation", methods=["GET", "POST"])
def vacation() -> Page:
    user = _user()
    current = _script(user)
    settings = current.settings
    errors: dict[str, str] = {}
    form = settings.vacation
    if request.method == "POST":
        f = request.form
        form = Vacation(
            enabled=f.get("enabled") == "1",
            start=f.get("start", "").strip(),
            end=f.get("end", "").strip(),
            subject=f.get("subject", "").strip(),
            body=f.get("body", "").replace("\r\n", "\n").strip(),
            days=_int(f.get("days", ""), 0),
            addresses=_aliases(user),
        )
        new = replace(settings, vacation=form)
        errors = {k: v for k, v in check(new).items() if k in _VACATION_FIELDS}
        if not errors:
            error = _save(user, current, new)
            if not error:
                flash("Automatic reply on." if form.enabled else "Automatic reply off.", "ok")
                return redirect(url_for("me_mail.vacation"))
            errors["save"] = error
    status = 400 if errors else 200
    page = render_template(
        "me/mail_vacation.html",
        v=form,
        errors=errors,
        note=current.note,
        aliases=_aliases(user),
        max_body=MAX_BODY,
        max_days=MAX_DAYS,
    )
    return page, status


_VACATION_FIELDS = {"start", "end", "subject", "body", "days"}


# ------------------------------------------------------------------ forwarding


@bp.route("/forwarding", methods=["GET", "POST"])
def forwarding() -> Page:
    user = _user()
    current = _script(user)
    settings = current.settings
    errors: dict[str, str] = {}
    form = settings.forwarding
    if request.method == "POST":
        raw = request.form.get("addresses", "").replace(",", "\n").split()
        addresses = tuple(dict.fromkeys(a.strip().lower() for a in raw if a.strip()))
        # No address: forwarding is off, and "keep a copy" back at its default.
        form = Forwarding(addresses, request.form.get("keep") == "1") if addresses else Forwarding()
        if user.lower() in addresses:
            errors["addresses"] = "Mail to yourself is already here."
        new = replace(settings, forwarding=form)
        errors.update({k: v for k, v in check(new).items() if k == "addresses"})
        if not errors:
            error = _save(user, current, new)
            if not error:
                flash("Forwarding saved." if addresses else "Forwarding off.", "ok")
                return redirect(url_for("me_mail.forwarding"))
            errors["save"] = error
    page = render_template(
        "me/mail_forwarding.html",
        fwd=form,
        errors=errors,
        note=current.note,
        max_forwards=MAX_FORWARDS,
    )
    return page, 400 if errors else 200


# ------------------------------------------------------------------ filter rules

FIELD_LABELS = {"from": "Sender (From)", "to": "Recipient (To or Cc)", "subject": "Subject"}
ACTION_LABELS = {
    "folder": "Move to folder",
    "junk": "Mark as junk (move to Junk)",
    "forward": "Forward to",
    "discard": "Delete it",
}


def _rules_page(
    current: UserScript, folders: list[str], errors: dict[str, str], rule: Rule | None
) -> Page:
    page = render_template(
        "me/mail_filters.html",
        rules=current.settings.rules,
        folders=folders,
        errors=errors,
        rule=rule or Rule("from", "", "folder"),
        fields=[(k, FIELD_LABELS[k]) for k in FIELDS],
        actions=[(k, ACTION_LABELS[k]) for k in ACTIONS],
        field_labels=FIELD_LABELS,
        action_labels=ACTION_LABELS,
        note=current.note,
        max_rules=MAX_RULES,
    )
    return page, 400 if errors else 200


@bp.route("/filters", methods=["GET", "POST"])
def filters() -> Page:
    user = _user()
    current = _script(user)
    folders = _folders(user)
    if request.method == "GET":
        return _rules_page(current, folders, {}, None)
    f = request.form
    action = f.get("action", "")
    target = f.get("folder", "") if action == "folder" else ""
    if action == "forward":
        target = f.get("address", "").strip().lower()
    rule = Rule(f.get("field", ""), f.get("contains", "").strip(), action, target)
    new = replace(current.settings, rules=(*current.settings.rules, rule))
    problems = check(new, frozenset(folders))
    errors: dict[str, str] = {}
    key = f"rule-{len(new.rules) - 1}"
    if key in problems or "rules" in problems:
        errors["rule"] = problems.get(key) or problems["rules"]
    else:
        error = _save(user, current, new)
        if not error:
            flash("Rule added.", "ok")
            return redirect(url_for("me_mail.filters"))
        errors["save"] = error
    return _rules_page(current, folders, errors, rule)


def _edit_rules(index: int, move: int) -> Response:
    """Delete the rule at ``index`` (move 0) or swap it with its upper neighbour (-1)."""
    user = _user()
    current = _script(user)
    rules = list(current.settings.rules)
    if not 0 <= index < len(rules) or not 0 <= index + move < len(rules):
        abort(404)
    if move:
        rules[index + move], rules[index] = rules[index], rules[index + move]
    else:
        del rules[index]
    error = _save(user, current, replace(current.settings, rules=tuple(rules)))
    if error:
        flash(error, "error")
    else:
        flash("Rule moved up." if move else "Rule deleted.", "ok")
    return redirect(url_for("me_mail.filters"))


@bp.route("/filters/<int:index>/delete", methods=["POST"])
def filter_delete(index: int) -> Response:
    return _edit_rules(index, 0)


@bp.route("/filters/<int:index>/up", methods=["POST"])
def filter_up(index: int) -> Response:
    return _edit_rules(index, -1)
