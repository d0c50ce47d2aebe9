"""Random input never breaks the parsers of issue 17 items 11-13 (hypothesis)."""

from __future__ import annotations

import base64
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.imap.fetch import decode_qp
from appliance.mime.addresses import parse_addresses, search_forms
from appliance.mime.binary import encode_nul_parts
from appliance.mime.headers import split_params
from appliance.mime.summary import summarize_file

_PARAM_TEXT = st.text(alphabet="ab*0123'%=;\"\\ ()\té", max_size=80)
_ADDR_TEXT = st.text(alphabet='ab@<>,;:()"\\ .[]', max_size=60)


@settings(max_examples=300, deadline=None)
@given(_PARAM_TEXT)
def test_split_params_never_raises(value: str) -> None:
    head, params = split_params("x/y;" + value)
    assert head == "x/y"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params)


@settings(max_examples=300, deadline=None)
@given(_ADDR_TEXT)
def test_address_parsing_never_raises(value: str) -> None:
    parse_addresses(value)
    search_forms(value)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_qp_decoding_never_raises_and_never_grows(raw: bytes) -> None:
    assert len(decode_qp(raw)) <= len(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(["7bit", "binary", "8bit"]))
def test_nul_bodies_round_trip_through_base64(body: bytes, cte: str) -> None:
    boundary = "zz-boundary-zz"
    message = (
        f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n--{boundary}\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n\r\n"
    ).encode()
    message += body.replace(b"\r", b"").replace(b"\n", b"") + b"\x00\r\n--zz-boundary-zz--\r\n"
    out = encode_nul_parts(message)
    assert out is not None and b"\x00" not in out
    part = summarize_file(io.BytesIO(out))["part"]["c"][0]
    assert part["e"] == "base64"
    decoded = base64.b64decode(out[part["bs"] : part["be"]].replace(b"\r\n", b""))
    assert decoded == body.replace(b"\r", b"").replace(b"\n", b"") + b"\x00"
