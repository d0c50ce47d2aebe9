"""The gateway reads a large form body (an upload, a long message) in blocks to see
whether it asks Roundcube for a login, never holding the body whole; a login hidden
behind a large field is still found (webui.webmail._large_form)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from webui.webmail import SCAN_BLOCK, _large_form, _Suspect, login_attempt

URLENC = "application/x-www-form-urlencoded"
MULTI = "multipart/form-data; boundary=b0undary"
BIG = SCAN_BLOCK * 3 + 17  # across several blocks, not aligned


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--b0undary\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--b0undary--\r\n"


def read(ctype: str, body: bytes) -> dict[str, str]:
    stream = io.BytesIO(body)
    stream.seek(0)
    fields = _large_form(ctype, stream, len(body))
    assert stream.tell() == 0  # rewound for PHP
    return fields


def is_login(ctype: str, body: bytes, query: str = "") -> bool:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": ctype,
        "QUERY_STRING": query,
    }
    try:
        form = read(ctype, body)
    except _Suspect:
        return True
    return login_attempt(environ, b"", form) is not None


def test_urlencoded_fields_after_a_large_one() -> None:
    body = b"_message=" + b"a" * BIG + b"&_action=send&_to=bob%40example.org"
    assert read(URLENC, body) == {"_action": "send", "_to": "bob@example.org"}
    assert not is_login(URLENC, body)
    hidden = b"_message=" + b"a" * BIG + b"&_user=eve%40x&_pass=p&%2E%61ction=login"
    assert read(URLENC, hidden)["_action"] == "login"  # PHP: ".action" is "_action"
    assert is_login(URLENC, hidden)


def test_urlencoded_long_login_fields_are_suspect() -> None:
    # asciiwords() would strip the padding and leave "login": never let it through
    padded = b"x=1&_action=login" + b"%00" * BIG
    with pytest.raises(_Suspect):
        read(URLENC, padded)
    assert is_login(URLENC, padded)
    long_name = b"%20" * BIG + b"_action=login"  # PHP strips leading spaces of a name
    assert is_login(URLENC, long_name)


def test_multipart_fields_after_a_file() -> None:
    upload = multipart(
        part("_token", b"t0k"),
        part("_file", b"\x00\xff--b0undar" * (BIG // 10), filename="a.bin"),
        part("_id", b"42"),
    )
    assert read(MULTI, upload) == {"_token": "t0k", "_id": "42"}
    assert not is_login(MULTI, upload, "_task=mail&_action=upload")
    hidden = multipart(
        part("_file", b"x" * BIG, filename="a.bin"),
        part("_user", b"eve@x"),
        part("_action", b"login"),
    )
    assert is_login(MULTI, hidden)
    long_value = multipart(part("_action", b"login" + b" " * BIG))
    assert is_login(MULTI, long_value)


def test_file_content_naming_action_is_not_a_login() -> None:
    # the bytes of an uploaded file are not form fields
    text = b'--b0undary\r\nContent-Disposition: form-data; name="_action"\r\n\r\nlogin\r\n'
    upload = multipart(part("_file", b"y" * BIG + text.replace(b"\r\n", b"\n"), "f.txt"))
    assert not is_login(MULTI, upload, "_task=mail&_action=upload")
