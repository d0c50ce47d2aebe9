"""Charsets a client may name in SEARCH, SORT and THREAD (RFC 9051 6.4.4, RFC 5256 3).

Any character set Python has a codec for, by its IANA name or a common alias: US-ASCII,
UTF-8, ISO-8859-*, windows-125x, KOI8-R, Shift_JIS, EUC-JP, GB2312, Big5, UTF-7 ... (the
iconv set Dovecot accepts is of the same kind). Lookups only ever touch the fixed set of
modules in the ``encodings`` package, so client-chosen names cannot grow any cache.
"""

from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import functools
import pkgutil

DEFAULT_CHARSET = "UTF-8"  # no CHARSET: UTF-8, of which US-ASCII is a subset (as Dovecot)
ADVERTISED = ("US-ASCII", "UTF-8")  # RFC 9051 7.1: the list in NO [BADCHARSET (...)]
MAX_CHARSET_NAME = 64  # IANA names are at most 40 characters (RFC 2978 2.3)

# Codecs in ``encodings`` that decode text but are no character set a mail could use.
_NOT_CHARSETS = frozenset(
    {
        "aliases",
        "charmap",
        "idna",
        "mbcs",
        "oem",
        "punycode",
        "raw_unicode_escape",
        "undefined",
        "unicode_escape",
    }
)


@functools.cache
def _codec_modules() -> frozenset[str]:
    names = {m.name for m in pkgutil.iter_modules(encodings.__path__)}
    return frozenset(names - _NOT_CHARSETS)


@functools.lru_cache(maxsize=256)
def _codec_of_key(key: str) -> str | None:
    module = encodings.aliases.aliases.get(key, key)
    if module not in _codec_modules():
        return None
    try:
        info = codecs.lookup(module)
    except LookupError:
        return None
    return info.name if info._is_text_encoding else None


def codec_for(charset: str | None) -> str | None:
    """The Python codec for a charset name from a command (None: the default, UTF-8);
    None when the name is no character set we know."""
    if charset is None:
        return "utf-8"
    if not charset or len(charset) > MAX_CHARSET_NAME or not charset.isascii():
        return None
    return _codec_of_key(encodings.normalize_encoding(charset).lower())


def decode(raw: bytes, charset: str | None) -> str:
    """Search text from a command -> str. UnicodeDecodeError when the bytes are not valid
    in the charset; LookupError for an unknown charset."""
    codec = codec_for(charset)
    if codec is None:
        raise LookupError(charset)
    return raw.decode(codec)
