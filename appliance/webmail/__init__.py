"""Webmail: Roundcube from Debian's packages, run by a private php-fpm pool.

The web front (webui.webmail) serves Roundcube's static files itself and passes PHP
requests to php-fpm over FastCGI on ``[webmail] fpm_socket``. This package owns the PHP
side: :func:`prepare` writes Roundcube's config directory under ``[webmail] data`` (a
per-box secret key, SQLite database, temp and log directories) and :mod:`.fpm` writes the
php-fpm master config and runs it (``python -m appliance.webmail serve --config CFG``).
No webui import: this is the service floor.
"""

from __future__ import annotations

from appliance.webmail.fpm import (
    WEBMAIL_MIN_RAM,
    fpm_binary,
    fpm_config_text,
    max_children,
    ram_allows_webmail,
)
from appliance.webmail.roundcube import (
    PUBLIC_HTML,
    ROUNDCUBE_HOME,
    WebmailError,
    installed,
    prepare,
    roundcube_config_text,
)

__all__ = [
    "PUBLIC_HTML",
    "ROUNDCUBE_HOME",
    "WEBMAIL_MIN_RAM",
    "WebmailError",
    "fpm_binary",
    "fpm_config_text",
    "installed",
    "max_children",
    "prepare",
    "ram_allows_webmail",
    "roundcube_config_text",
]
