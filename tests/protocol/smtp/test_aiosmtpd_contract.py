"""appliance.smtp.session subclasses aiosmtpd's SMTP and relies on some of its private
members. aiosmtpd is pinned exactly (pyproject.toml); this test fails at the upgrade
that would change what those names are, instead of SMTP breaking quietly."""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import re
import tomllib

import aiosmtpd.smtp
from aiosmtpd.smtp import SMTP

from appliance.smtp import session
from appliance.smtp.session import AIOSMTPD_OVERRIDES, AIOSMTPD_USES, PillarboxSMTP
from tests.harness import REPO

SOURCE = inspect.getsource(aiosmtpd.smtp)


def test_aiosmtpd_is_pinned_to_the_installed_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    [pin] = [d for d in project["dependencies"] if d.startswith("aiosmtpd")]
    assert re.fullmatch(r"aiosmtpd==[0-9.]+", pin), pin
    assert pin.split("==")[1] == importlib.metadata.version("aiosmtpd")


def test_every_private_name_used_is_listed() -> None:
    """A private aiosmtpd member used in session.py but not listed would go unchecked."""
    ours = inspect.getsource(session)
    referenced = set(re.findall(r"(?:self|super\(\))\.(_[a-z][a-z_]*)", ours))
    own_methods = {n for n in vars(PillarboxSMTP) if n.startswith("_")}
    own_attributes = set(re.findall(r"self\.(_[a-z][a-z_]*)\s*(?::[^=\n]+)?=[^=]", ours))
    assert referenced - own_methods - own_attributes == set(AIOSMTPD_USES)


def test_overridden_hooks_exist_and_aiosmtpd_calls_them() -> None:
    for name in AIOSMTPD_OVERRIDES:
        assert callable(getattr(SMTP, name, None)), name
        assert name in vars(PillarboxSMTP), name
        # aiosmtpd itself calls the hook, so the override takes effect
        assert re.search(rf"self\.{name}\b(?!\s*=)", SOURCE), name
    assert inspect.signature(PillarboxSMTP._getaddr).parameters.keys() == (
        inspect.signature(SMTP._getaddr).parameters.keys()
    )


def test_used_members_exist() -> None:
    for name in ("_reset_timeout", "_set_rset_state"):
        assert callable(getattr(SMTP, name, None)), name
    # attributes aiosmtpd sets on the instance
    for name in ("_auth_required", "_reader", "_tls_protocol"):
        assert re.search(rf"self\.{name}(?::[^=\n]+)?\s*=", SOURCE), name
    assert "self._auth_required = auth_required" in SOURCE  # the constructor argument
    assert "self._reader._buffer.clear()" in SOURCE  # StreamReader's buffer, as _unread


def test_no_own_helper_shadows_an_aiosmtpd_member() -> None:
    """Our private helpers must not replace aiosmtpd internals by accident."""
    own = {n for n in vars(PillarboxSMTP) if n.startswith("_") and not n.startswith("__")}
    assert {n for n in own if hasattr(SMTP, n)} == set(AIOSMTPD_OVERRIDES)


def test_stream_reader_buffer_is_a_bytearray() -> None:
    """smtp.session._unread puts octets back into asyncio's StreamReader._buffer."""

    async def main() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"QUIT\r\n")
        session._unread(reader, b"NOOP\r\n")
        assert isinstance(reader._buffer, bytearray)  # type: ignore[attr-defined]
        assert await reader.readline() == b"NOOP\r\n"
        assert await reader.readline() == b"QUIT\r\n"

    asyncio.run(main())
