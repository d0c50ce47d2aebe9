"""The backup target form: a USB disk among the detected disks, an SFTP server or
S3-compatible storage. "Save and test" writes ``[backup]`` in pillarbox.toml, asks the
daemon to reload and then to create the repository (ctl ``backup_init``); the recovery
sheet with the new password follows. Failures are said in words; details go to the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance import config
from appliance.ctl.protocol import CtlError
from webui import configedit
from webui.backup import bp
from webui.context import WebContext, web
from webui.disks import Disk
from webui.security import current_user

log = logging.getLogger(__name__)

Page = Response | str | tuple[str, int]
KINDS = ("local", "sftp", "s3")
SFTP_KEY = "sftp-key"  # under <data_dir>/backup/
S3_SECRET = "s3-secret"  # noqa: S105 - a file name
REPO_DIR = "pillarbox-backup"  # made on the chosen disk


@dataclass(frozen=True)
class UsbChoice:
    disk: Disk
    mountpoint: str

    @property
    def path(self) -> str:
        return str(Path(self.mountpoint) / REPO_DIR)


def usb_choices(ctx: WebContext) -> list[UsbChoice]:
    """Mounted disks that are neither the system disk nor the disk holding the mail."""
    mail = str(ctx.config().mail_dir)
    out: list[UsbChoice] = []
    try:
        disks = ctx.disks()
    except Exception as exc:  # udev missing: the form still offers SFTP and S3
        log.warning("backup=disks-unlisted error=%s", exc)
        return []
    for disk in disks:
        if disk.holds_system:
            continue
        points = [disk.mountpoint] + [p.mountpoint for p in disk.partitions]
        for point in filter(None, points):
            if mail == point or mail.startswith(point.rstrip("/") + "/"):
                continue
            out.append(UsbChoice(disk, point))
    return out


def sftp_public_key(ctx: WebContext) -> str:
    """The box's own SSH key for the SFTP target (made 0600 on first use), as the one line
    to add to the server's ``authorized_keys``."""
    path = ctx.config().data_dir / "backup" / SFTP_KEY
    if not path.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        configedit.write_private(path, pem.decode("ascii"))
    loaded = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    public = loaded.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode("ascii") + f" pillarbox@{ctx.config().hostname}"


def daemon_down(exc: CtlError) -> bool:
    text = str(exc)
    return "not running" in text or "cannot talk" in text or "closed the connection" in text


def _words(kind: str, error: str) -> str:
    """What to check, for a failed repository creation (the detail is logged)."""
    low = error.lower()
    if "not installed" in low:
        return "The backup program (restic) is missing on this box."
    if "already" in low and "password" in low:
        return "A repository password is already stored on this box for another repository."
    if "wrong password" in low or "does not open" in low:
        return "A repository already exists there with another password; choose an empty place."
    if kind == "local":
        return "The disk could not be written to. Is it still plugged in and not full?"
    if kind == "sftp":
        return (
            "The SFTP server could not be reached or refused the key. Check the address and "
            "port, and that the box's key is in the server's authorized_keys."
        )
    return (
        "The storage could not be reached or refused the keys. Check the address, the bucket "
        "and the access key."
    )


def render_form(ctx: WebContext, form: dict[str, str], errors: dict[str, str]) -> str:
    return render_template(
        "backup/target.html",
        form=form,
        errors=errors,
        usb=usb_choices(ctx),
        public_key=sftp_public_key(ctx) if form.get("kind") == "sftp" else "",
    )


def _form(cfg: config.Config) -> dict[str, str]:
    b = cfg.backup
    current = {
        "kind": b.target if b.target != "none" else "local",
        "path": str(b.path or ""),
        "url": b.url,
        "port": str(b.sftp_port),
        "key_id": b.s3_access_key_id,
    }
    return {k: request.form.get(k, request.args.get(k, v)).strip() for k, v in current.items()}


def _table(ctx: WebContext, form: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    """The ``[backup]`` settings for the form, or fills ``errors``."""
    kind = form["kind"]
    backup_dir = ctx.config().data_dir / "backup"
    if kind == "local":
        if form["path"] not in {c.path for c in usb_choices(ctx)}:
            errors["path"] = "Choose one of the disks plugged into the box."
        return {"target": "local", "path": form["path"]}
    if kind == "sftp":
        user_host, sep, where = form["url"].partition(":")
        if not sep or "@" not in user_host or not where or form["url"].startswith("-"):
            errors["url"] = "Enter it as user@host:/path, for example backup@nas.lan:/srv/mail."
        port = int(form["port"]) if form["port"].isdigit() else 0
        if not 1 <= port <= 65535:
            errors["port"] = "Enter the SSH port (usually 22)."
        sftp_public_key(ctx)
        return {
            "target": "sftp",
            "url": form["url"],
            "sftp_port": port or 22,
            "sftp_identity": str(backup_dir / SFTP_KEY),
        }
    if kind == "s3":
        url = form["url"]
        host = url.split("://", 1)[1].split("/", 1) if "://" in url else ["", ""]
        if not url.startswith("https://") or "@" in host[0] or len(host) < 2 or not host[1]:
            errors["url"] = (
                "Enter it as https://host/bucket, for example https://s3.example.com/mail."
            )
        if not form["key_id"]:
            errors["key_id"] = "Enter the access key id."
        secret = request.form.get("secret", "")
        secret_file = backup_dir / S3_SECRET
        if secret:
            if not errors:
                configedit.write_private(secret_file, secret)
        elif not secret_file.exists():
            errors["secret"] = "Enter the secret access key."  # noqa: S105 - a message
        return {
            "target": "s3",
            "url": url,
            "s3_access_key_id": form["key_id"],
            "s3_secret_file": str(secret_file),
        }
    errors["kind"] = "Choose where the backups go."
    return {}


@bp.route("/target", methods=["GET", "POST"])
def target() -> Page:
    ctx = web()
    form = _form(ctx.config())
    if request.method == "GET":
        return render_form(ctx, form, {})
    errors: dict[str, str] = {}
    table = _table(ctx, form, errors)
    if errors:
        return render_form(ctx, form, errors), 400
    drop = {"path", "url", "sftp_identity", "sftp_port", "s3_access_key_id", "s3_secret_file"}
    try:
        configedit.replace_keys(ctx.config_path, "backup", table, drop)
    except config.ConfigError as exc:
        log.warning("web=backup-target-invalid error=%s", exc)
        return render_form(ctx, form, {"url": "These settings are not valid."}), 400
    applied = configedit.reload_daemon(ctx)
    log.info("web=backup-target-set kind=%s by=%s", form["kind"], current_user())
    try:
        made = ctx.slow_ctl().call("backup_init")
    except CtlError as exc:
        log.warning("web=backup-init-failed kind=%s error=%s", form["kind"], exc)
        if daemon_down(exc):
            words = (
                "Saved, but the mail service is not running, so the backup could not be "
                "tested. Start it and press the button again."
            )
        else:
            words = _words(form["kind"], str(exc))
        return render_form(ctx, form, {"test": words}), 400
    created = isinstance(made, dict) and made.get("created")
    flash(
        ("The backup repository is ready. " if created else "The backup target answers. ")
        + applied
        + " Print the recovery sheet now and keep it away from the box.",
        "ok",
    )
    return redirect(url_for("backup.recovery_sheet"))
