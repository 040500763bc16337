"""What the doctor shows of the outside world: secrets hidden and control, escape and bidi characters made visible.

Every value that reaches output (text, JSON, summary, the shipped report, stderr lines) passes through here, at the
renderers; checks may keep raw values in their results for other checks to use.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

HIDDEN = "***"
MIN_PIECE = 4  # a shorter piece of a proxy password is not hidden: it would blank common words in every message
# Python's escapes: \xNN below LATIN1_END, \uNNNN in the Basic Multilingual Plane, \UNNNNNNNN above
LATIN1_END, BMP_END = 0x100, 0x10000
# scheme://userinfo@ in free text. A raw password may hold / # ? @ (botocore's own mask_proxy_url parses with
# urlparse and so misses those: botocore/httpsession.py), and in text that is not from this run's environment (the
# agent's start-up line "https_proxy: <value>", aws/amazon-ssm-agent core/agent.go initializeBasicModules; a proxy
# line in a config file) also a raw space or quote, where the URL token ends. So once a URL's first token looks like
# credentials (it holds an @ or a colon), the userinfo runs to the last "@host[:port]" on that line (hiding too much
# when a URL with a port is followed by an e-mail address on the same line: the price of never showing a password).
_SCHEME = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{0,15}://", re.ASCII)
_TOKEN = re.compile(r"[^\s\"'<>]*", re.ASCII)
_AT_HOST = re.compile(r"@(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?=[/?#\s\"'<>),;\]]|\Z)", re.ASCII)
# key=value pairs whose key names a secret (query strings such as X-Amz-Signature=, env dumps, config lines, JSON).
# In a query string (after ? or &) the value ends at &; a quoted value ends at the last such quote on the line (it
# may hold the quote raw); any other value runs to the end of the line, since a raw password may hold a space.
_SECRET_KEY = r"[\w-]*(?:password|passwd|secret|token|signature|credential)[\w-]*"
_SECRET_PAIR = re.compile(
    rf"(?i)(?P<query>[?&]{_SECRET_KEY}=)[^&#\s\"'<>]*"
    rf"|(?P<key>(?:\b{_SECRET_KEY}\s*=\s*|\"{_SECRET_KEY}\"\s*:\s*)(?P<quote>[\"']?))(?P<value>[^\n]*)", re.ASCII)
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
        _KNOWN.update(p for p in [password, *re.split(r"[/#?@:]", password)] if len(p) >= MIN_PIECE)


def secrets(text: str) -> str:
    """Free text (an error message, a log line) with every URL's userinfo and every secret-named value hidden."""
    for known in sorted(_KNOWN, key=len, reverse=True):
        text = text.replace(known, HIDDEN)
    text = _PROCESS_STDERR.sub(r"\1(its stderr is not shown: it may hold credentials)", text)
    return _SECRET_PAIR.sub(_hide_pair, _hide_userinfo(text))


def _hide_userinfo(text: str) -> str:
    out, pos = [], 0
    found = _SCHEME.search(text)
    while found:
        start = found.end()
        end = _userinfo_end(text, start)
        out.append(text[pos:start] + (HIDDEN if end is not None else ""))
        pos = start if end is None else end
        found = _SCHEME.search(text, pos)
    return "".join(out) + text[pos:]


def _userinfo_end(text: str, start: int):
    """Where the userinfo of the URL whose authority starts at `start` ends (at its "@"), or None when it has none.
    A token with a colon may be a credential cut short at a raw space or quote ("user:pa" of "user:pa ss@host",
    "user:12" of "user:12 34@host", "a/b:pa" of a user name holding a raw /): a later "@host" on the line says so."""
    eol = text.find("\n", start)
    eol = len(text) if eol < 0 else eol
    found = _TOKEN.match(text, start, eol)
    token = found.group() if found else ""
    if ":" not in token and "@" not in token:
        return None
    ats = [m.start() for m in _AT_HOST.finditer(text, start, eol)]
    if ats:
        return ats[-1]
    return start + token.rindex("@") if "@" in token else None


def _hide_pair(match: re.Match) -> str:
    if match.group("query"):
        return match.group("query") + HIDDEN
    quote, value = match.group("quote"), match.group("value")
    tail = value[value.rindex(quote):] if quote and quote in value else ""
    return match.group("key") + HIDDEN + tail


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
    return f"\\x{code:02x}" if code < LATIN1_END else f"\\u{code:04x}" if code < BMP_END else f"\\U{code:08x}"
