"""What the doctor shows of the outside world: secrets hidden and control, escape and bidi characters made visible.

Every value that reaches output (text, JSON, summary, the shipped report, stderr lines) passes through here, at the
renderers; checks may keep raw values in their results for other checks to use.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

HIDDEN = "***"
# scheme://userinfo@ in free text: userinfo runs to the last @ of the token, since a raw password may hold / # ? @
# (botocore's own mask_proxy_url parses with urlparse and so misses those: botocore/httpsession.py).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]{0,15}://)[^\s\"'<>]*@", re.ASCII)
# key=value pairs whose key names a secret (query strings such as X-Amz-Signature=, env dumps, config lines).
_SECRET_PAIR = re.compile(r"(?i)\b([\w-]*(?:password|passwd|secret|token|signature|credential)[\w-]*=)[^\s\"'&,;]+",
                          re.ASCII)
# botocore's CredentialRetrievalError is 'Error when retrieving credentials from {provider}: {error_msg}', and for
# credential_process error_msg is the process's whole stderr (botocore/credentials.py ProcessProvider), which may
# echo the credentials it failed to print.
_PROCESS_STDERR = re.compile(r"(Error when retrieving credentials from custom-process: ).*", re.DOTALL)
# Shown as \x1b or \u202e: C0/C1 controls, DEL, and the bidi controls that reorder text on screen
# (Unicode TR#9; the "Trojan Source" characters U+202A-U+202E, U+2066-U+2069, plus U+200E, U+200F, U+061C).
# Variables whose values are URLs that may carry credentials (proxies, and botocore's IMDS and container endpoints).
URL_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
                 "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_CONTAINER_CREDENTIALS_FULL_URI")
_KNOWN: set = set()  # secrets learnt from this run's environment: hidden wherever they turn up
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def url(value: str) -> str:
    """A URL-valued setting (a proxy, AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_CONTAINER_CREDENTIALS_FULL_URI) with
    its userinfo hidden whole: everything between :// (or the start) and the value's last @."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "", value
    if "@" in rest:
        rest = HIDDEN + "@" + rest.rsplit("@", 1)[1]
    return visible(f"{scheme}{sep}{rest}")


def learn(environ) -> None:
    """Remember the passwords in this run's URL-valued variables, and their pieces between URL delimiters: a
    parser that misreads such a URL quotes a piece in its error ("Port could not be cast to integer value as ...")."""
    for name in URL_VARIABLES:
        userinfo = str(environ.get(name) or "").split("://", 1)[-1].rpartition("@")[0]
        password = userinfo.partition(":")[2] or userinfo
        _KNOWN.update(p for p in [password, *re.split(r"[/#?@:]", password)] if len(p) >= 4)


def secrets(text: str) -> str:
    """Free text (an error message, a log line) with every URL's userinfo and every secret-named value hidden."""
    for known in sorted(_KNOWN, key=len, reverse=True):
        text = text.replace(known, HIDDEN)
    text = _PROCESS_STDERR.sub(r"\1(its stderr is not shown: it may hold credentials)", text)
    text = _USERINFO.sub(lambda m: m.group("scheme") + HIDDEN + "@", text)
    return _SECRET_PAIR.sub(lambda m: m.group(1) + HIDDEN, text)


def visible(text: str, keep_newlines: bool = False) -> str:
    """Control, escape and bidi characters written as escapes, so that no value can move the cursor, clear the
    screen, reorder a line or start a forged one."""
    if text.isprintable():  # the common case, decided in C: no control, format, surrogate or private-use character
        return text
    return "".join(_escape(c) if _hidden(c) and not (keep_newlines and c in "\n\t") else c for c in text)


def line(text: object) -> str:
    """A value for a line of text output: secrets hidden, one line, nothing invisible."""
    return visible(secrets(str(text)))


def tree(value: Any) -> Any:
    """Every string in a JSON-like structure made safe to show (newlines kept: JSON escapes them)."""
    if isinstance(value, str):
        return visible(secrets(value), keep_newlines=True)
    if isinstance(value, dict):
        return {tree(str(k)) if not isinstance(k, str) else visible(k): tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [tree(v) for v in value]
    return value


def _hidden(char: str) -> bool:
    return char in _BIDI or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
