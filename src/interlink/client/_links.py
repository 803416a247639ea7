"""Following ``Link`` response headers (RFC 8288) safely: parse them, pick ``rel="next"``.

Anchor: RFC 8288 §3 (``Link: <target>; rel="next"; title="..."``), as sent by
GitHub, GitLab and Okta for pagination. Hand-written because the grammar
defeats a plain ``split``: a target may hold commas and semicolons, a quoted
parameter may hold commas, semicolons and escaped quotes, one header may
carry several links and one link several space-separated ``rel`` values, and
a response may repeat the header. The parser is lenient: a link-value it
cannot read is skipped, never fatal.

``origin`` and ``origin_text`` tell whether a link leaves the host the
listing started on: following it would hand the client's credentials to
another host.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from interlink.client._models import Headers

__all__ = ["next_link", "origin", "origin_text", "parse_link_header"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of ``url``, lower-cased, the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # a malformed port matches no real origin
    return scheme, (parts.hostname or ""), port if port is not None else _DEFAULT_PORTS.get(scheme)


def origin_text(value: tuple[str, str, int | None]) -> str:
    """An ``origin`` as a URL prefix (``https://api.example``, ``http://127.0.0.1:8080``)."""
    scheme, host, port = value
    return f"{scheme}://{host}" + ("" if port in (None, _DEFAULT_PORTS.get(scheme)) else f":{port}")


def next_link(headers: Headers) -> str | None:
    """The target of the first ``rel="next"`` link in response ``headers``."""
    for header in headers.getall("Link", ()):
        for target, rels in parse_link_header(header):
            if "next" in rels:
                return target
    return None


def parse_link_header(header: str) -> list[tuple[str, set[str]]]:
    """Each ``<target>; params`` of one Link header as (target, lower-cased rel values).

    Lenient: a link-value that does not parse is skipped, not fatal.
    """
    links: list[tuple[str, set[str]]] = []
    index, length = 0, len(header)
    while index < length:
        start = header.find("<", index)
        if start < 0:
            break
        end = header.find(">", start)
        if end < 0:
            break
        target = header[start + 1 : end].strip()
        index = end + 1
        rels: set[str] = set()
        # Parameters run until a comma outside quotes.
        while index < length and header[index] != ",":
            if header[index] != ";":
                index += 1
                continue
            name_end = index + 1
            while name_end < length and header[name_end] not in "=;,":
                name_end += 1
            name = header[index + 1 : name_end].strip().lower()
            value, index = _param_value(header, name_end)
            if name == "rel":
                rels.update(value.lower().split())
        links.append((target, rels))
        index += 1
    return links


def _param_value(header: str, index: int) -> tuple[str, int]:
    """The value of a link parameter whose name ends at ``index``; and where it ends."""
    length = len(header)
    if index >= length or header[index] != "=":
        return "", index
    index += 1
    while index < length and header[index] in " \t":
        index += 1
    if index < length and header[index] == '"':
        chars: list[str] = []
        index += 1
        while index < length and header[index] != '"':
            if header[index] == "\\" and index + 1 < length:
                index += 1
            chars.append(header[index])
            index += 1
        return "".join(chars), index + 1
    end = index
    while end < length and header[end] not in ";,":
        end += 1
    return header[index:end].strip(), end
