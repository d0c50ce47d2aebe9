"""Provider presets for "Bring your old mail": server, port, TLS and the password hint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    key: str
    label: str
    host: str
    port: int
    security: str  # tls | starttls
    hint: str


PRESETS: tuple[Preset, ...] = (
    Preset(
        "gmail",
        "Gmail",
        "imap.gmail.com",
        993,
        "tls",
        "Use an app password: turn on 2-Step Verification in your Google Account, then "
        "create one under Security > App passwords. Labels become folders; All Mail is "
        "copied only for messages no label folder holds.",
    ),
    Preset(
        "outlook",
        "Outlook.com / Hotmail",
        "outlook.office365.com",
        993,
        "tls",
        "Microsoft is turning off password sign-in for IMAP on Outlook.com. If the login "
        "is refused, save your folders as mbox files with Thunderbird and import those "
        "with `pillarbox import mbox`.",
    ),
    Preset(
        "yahoo",
        "Yahoo Mail",
        "imap.mail.yahoo.com",
        993,
        "tls",
        "Use an app password: Account Info > Account Security > Generate app password.",
    ),
    Preset(
        "icloud",
        "iCloud Mail",
        "imap.mail.me.com",
        993,
        "tls",
        "Use an app-specific password from appleid.apple.com (Sign-In and Security) and "
        "your full iCloud address as the login.",
    ),
    Preset(
        "other",
        "Other (IMAP)",
        "",
        993,
        "tls",
        "Your old provider's help pages list the IMAP server; port 993 is SSL/TLS, 143 "
        "is STARTTLS.",
    ),
)
