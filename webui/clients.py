"""Mail-client settings: the settings page, Thunderbird autoconfig, Outlook autodiscover,
Apple profiles, MTA-STS.

The autoconfig files and the MTA-STS policy are public (mail clients and sending servers
fetch them without signing in); they reveal only host names and ports.
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import segno
from flask import Blueprint, Response, abort, render_template, request, url_for

from appliance import config
from appliance.accounts import AccountError, normalize_address
from webui import dnscheck
from webui.context import web

bp = Blueprint("clients", __name__)


@dataclass(frozen=True)
class Server:
    """One way to reach the box, as a mail client needs it."""

    kind: str  # imap | pop3 | smtp
    label: str
    port: int
    socket: str  # SSL | STARTTLS (Thunderbird's socketType values)


def servers(cfg: config.Config) -> list[Server]:
    """The client-facing listeners that are switched on, implicit TLS first."""
    table = [
        ("imap", "IMAP", cfg.listeners.imaps, "SSL"),
        ("imap", "IMAP", cfg.listeners.imap, "STARTTLS"),
        ("pop3", "POP3", cfg.listeners.pop3s, "SSL"),
        ("pop3", "POP3", cfg.listeners.pop3, "STARTTLS"),
        ("smtp", "SMTP (sending)", cfg.listeners.submissions, "SSL"),
        ("smtp", "SMTP (sending)", cfg.listeners.submission, "STARTTLS"),
    ]
    return [Server(kind, label, ls[0].port, sock) for kind, label, ls, sock in table if ls]


def _first(cfg: config.Config, kind: str) -> Server | None:
    return next((s for s in servers(cfg) if s.kind == kind), None)


def _domain_for(address: str) -> str:
    accounts = web().accounts
    domain = address.rpartition("@")[2].lower()
    if domain and accounts.is_local_domain(domain):
        return domain
    domains = accounts.list_domains()
    return domains[0] if domains else web().config().hostname


def phone_url(hostname: str, email: str) -> str:
    """Where a phone fetches its profile: over HTTPS on the box's public name."""
    return f"https://{hostname}" + url_for("clients.phone_profile", email=email)


@bp.route("/clients")
def page() -> str:
    ctx = web()
    cfg = ctx.config()
    users = ctx.accounts.list_users()
    wanted = request.args.get("qr", "")
    chosen = next((u.email for u in users if u.email == wanted), users[0].email if users else "")
    url = phone_url(cfg.hostname, chosen) if chosen else ""
    return render_template(
        "clients.html",
        hostname=cfg.hostname,
        servers=servers(cfg),
        users=users,
        chosen=chosen,
        phone_url=url,
        qr=segno.make(url, error="m").svg_data_uri(scale=4) if url else "",
    )


def _autoconfig() -> Response:
    cfg = web().config()
    address = request.args.get("emailaddress", "")
    domain = _domain_for(address)
    xml = render_template(
        "autoconfig.xml",
        domain=domain,
        hostname=cfg.hostname,
        incoming=[s for s in servers(cfg) if s.kind in ("imap", "pop3")],
        outgoing=[s for s in servers(cfg) if s.kind == "smtp"],
    )
    return Response(xml, mimetype="application/xml")


@bp.route("/mail/config-v1.1.xml")
def autoconfig() -> Response:
    return _autoconfig()


@bp.route("/.well-known/autoconfig/mail/config-v1.1.xml")
def autoconfig_wellknown() -> Response:
    return _autoconfig()


MAX_AUTODISCOVER_REQUEST = 16 * 1024  # bytes; Outlook's request is well under 1 KiB


def _posted_address() -> str | None:
    """The EMailAddress of an Outlook POX autodiscover request, normalised; None if the
    body is not such a request. No DTDs (no entity expansion)."""
    body = request.get_data(cache=False)
    if len(body) > MAX_AUTODISCOVER_REQUEST or b"<!DOCTYPE" in body.upper():
        return None
    try:
        # A DOCTYPE was refused above, so no entities to expand; expat never fetches.
        root = ET.fromstring(body)  # noqa: S314 - DTD-free, at most 16 KiB
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag.rpartition("}")[2] == "EMailAddress" and element.text:
            try:
                return normalize_address(element.text)
            except AccountError:
                return None
    return None


@bp.route("/autodiscover/autodiscover.xml", methods=["POST"])  # the path Outlook posts to
def autodiscover() -> Response:
    """Outlook's POX autodiscover (MS-OXDSCLI 2.2.4): IMAP and SMTP settings for the posted
    address. Public and exempt from the CSRF check (webui.security): it changes nothing."""
    if (request.content_length or 0) > MAX_AUTODISCOVER_REQUEST:
        abort(413)
    email = _posted_address()
    if email is None:
        abort(400, description="Expected an Outlook autodiscover request with EMailAddress.")
    cfg = web().config()
    xml = render_template(
        "autodiscover.xml",
        email=email,
        hostname=cfg.hostname,
        protocols=[s for s in (_first(cfg, "imap"), _first(cfg, "smtp")) if s is not None],
    )
    return Response(xml, mimetype="application/xml")


def mobileconfig(cfg: config.Config, email: str, password: str | None = None) -> bytes:
    """An unsigned Apple configuration profile with one IMAP account; the device asks for
    the password unless ``password`` (an app password, webui.me) is given."""
    imap, smtp = _first(cfg, "imap"), _first(cfg, "smtp")
    if imap is None or smtp is None:
        raise ValueError("IMAP or SMTP submission is switched off")
    domain = email.rpartition("@")[2]
    ident = ".".join(reversed(cfg.hostname.split("."))) + ".pillarbox"
    # Stable UUIDs per box and address: reinstalling replaces the profile, not duplicates it.
    account_uuid = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"account.{email}.{cfg.hostname}"))
    profile_uuid = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"profile.{email}.{cfg.hostname}"))
    account = {
        "EmailAccountDescription": f"{email}",
        "EmailAccountName": email.partition("@")[0],
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": email,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": cfg.hostname,
        "IncomingMailServerPortNumber": imap.port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": email,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": cfg.hostname,
        "OutgoingMailServerPortNumber": smtp.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": email,
        "OutgoingPasswordSameAsIncomingPassword": True,
        "PayloadDisplayName": f"Mail ({email})",
        "PayloadIdentifier": f"{ident}.mail.{account_uuid}",
        "PayloadType": "com.apple.mail.managed",
        "PayloadUUID": account_uuid,
        "PayloadVersion": 1,
    }
    if password is not None:
        account["IncomingPassword"] = password
        account["OutgoingPassword"] = password
    asked = "the device asks for the password" if password is None else "with an app password"
    profile = {
        "PayloadContent": [account],
        "PayloadDisplayName": f"Mail for {domain}",
        "PayloadDescription": f"Sets up {email}; {asked}.",
        "PayloadIdentifier": f"{ident}.profile.{profile_uuid}",
        "PayloadOrganization": domain,
        "PayloadRemovalDisallowed": False,
        "PayloadType": "Configuration",
        "PayloadUUID": profile_uuid,
        "PayloadVersion": 1,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


@bp.route("/clients/apple.mobileconfig")
def apple_profile() -> Response:
    ctx = web()
    try:
        email = normalize_address(request.args.get("email", ""))
    except AccountError:
        abort(400, description="Choose a mailbox first.")
    if ctx.accounts.get_user(email) is None:
        abort(404, description="There is no mailbox with that address.")
    try:
        body = mobileconfig(ctx.config(), email)
    except ValueError as exc:
        abort(409, description=str(exc))
    filename = email.replace("@", "_at_") + ".mobileconfig"
    return Response(
        body,
        mimetype="application/x-apple-aspen-config",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.route("/mail/phone.mobileconfig")
def phone_profile() -> Response:
    """The profile a phone opens from the QR code on the Mail apps page. Public, like
    autoconfig: it holds host names and ports, and the device asks for the password. Any
    address of a domain served here gets one, so it tells nothing about which mailboxes
    exist."""
    ctx = web()
    try:
        email = normalize_address(request.args.get("email", ""))
    except AccountError:
        abort(400, description="The link is incomplete: scan the code again.")
    if not ctx.accounts.is_local_domain(email.rpartition("@")[2]):
        abort(404, description="This box does not serve mail for that domain.")
    try:
        body = mobileconfig(ctx.config(), email)
    except ValueError:
        abort(409, description="Mail apps cannot connect: IMAP or sending is switched off.")
    return Response(
        body,
        mimetype="application/x-apple-aspen-config",
        headers={"Content-Disposition": 'attachment; filename="mail.mobileconfig"'},
    )


@bp.route("/.well-known/mta-sts.txt")
def mta_sts_policy() -> Response:
    """RFC 8461 3.2: the policy, served on https://mta-sts.<domain>/ (mode testing)."""
    return Response(dnscheck.mta_sts_policy(web().config()), mimetype="text/plain")
