"""Facts: what gate knows about one request, computed once from the ASGI scope."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from gate.asgi import Scope
from gate.net import ForwardedFor, TrustedProxies, prefix_of

UNKNOWN_PEER = "0.0.0.0"
# The names browsers, crawlers and front proxies send, decoded once: decoding and lower-casing every name of every
# request was about 40 % of building the header dict (perf, docs/benchmarks.md). Other names are decoded as they come.
COMMON_NAMES: dict[bytes, str] = {
    name.encode("ascii"): name
    for name in (
        "host",
        "connection",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "pragma",
        "priority",
        "cookie",
        "referer",
        "origin",
        "dnt",
        "te",
        "upgrade-insecure-requests",
        "sec-ch-ua",
        "sec-ch-ua-mobile",
        "sec-ch-ua-platform",
        "sec-fetch-site",
        "sec-fetch-mode",
        "sec-fetch-user",
        "sec-fetch-dest",
        "if-none-match",
        "if-modified-since",
        "range",
        "content-type",
        "content-length",
        "transfer-encoding",
        "authorization",
        "from",
        "signature",
        "signature-input",
        "signature-agent",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
    )
}


# Its own __init__ (init=False): mypyc compiles that one, not the one dataclass generates (docs/architecture.md).
@dataclass(slots=True, init=False)
class Facts:
    method: str
    http_version: str  # "1.0", "1.1", "2"
    scheme: str  # as the client used it: the trusted X-Forwarded-Proto, else the listener's
    host: str  # as the client asked for it (trusted X-Forwarded-Host, else Host), without port handling
    path: str  # percent-decoded, for matching; forwarding uses the raw bytes in the scope
    raw_path: str  # as the client sent it (what a Web Bot Auth signature covers as @path)
    query: str  # raw query string, latin-1 decoded
    ip: str  # the client, trusted-proxy aware
    prefix: str  # the client's /24 (IPv4) or /64 (IPv6)
    peer: str  # the TCP peer
    peer_trusted: bool
    user_agent: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", " (cookies with "; ")
    site_busy: bool = False  # the site-wide load at the time of the request (gate.load), for `load: busy` rules

    def __init__(
        self,
        method: str,
        http_version: str,
        scheme: str,
        host: str,
        path: str,
        raw_path: str,
        query: str,
        ip: str,
        prefix: str,
        peer: str,
        peer_trusted: bool,
        user_agent: str,
        headers: dict[str, str],
        site_busy: bool = False,
    ) -> None:
        self.method = method
        self.http_version = http_version
        self.scheme = scheme
        self.host = host
        self.path = path
        self.raw_path = raw_path
        self.query = query
        self.ip = ip
        self.prefix = prefix
        self.peer = peer
        self.peer_trusted = peer_trusted
        self.user_agent = user_agent
        self.headers = headers
        self.site_busy = site_busy

    @classmethod
    def from_scope(cls, scope: Scope, proxies: TrustedProxies, site_busy: bool = False) -> Facts:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = COMMON_NAMES.get(raw_name) or raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name in headers:
                headers[name] += ("; " if name == "cookie" else ", ") + value
            else:
                headers[name] = value
        client = scope.get("client")
        peer = client[0] if client else UNKNOWN_PEER
        who = proxies.resolve(peer, headers.get("x-forwarded-for"), headers.get("x-real-ip"))
        return cls.build(scope, headers, who, site_busy=site_busy)

    @classmethod
    def build(
        cls,
        scope: Scope,
        headers: dict[str, str],
        who: ForwardedFor,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        site_busy: bool = False,
        raw_path: str | None = None,
    ) -> Facts:
        """Facts for a request whose method, path or query may come from elsewhere (auth mode's headers)."""
        scheme = scope.get("scheme", "http")
        host = headers.get("host", "")
        if who.peer_trusted:
            scheme = first_value(headers.get("x-forwarded-proto")) or scheme
            host = first_value(headers.get("x-forwarded-host")) or host
        return Facts(  # not cls(...): compiled, a call of the class itself skips building keyword arguments
            method=method if method is not None else scope.get("method", "GET"),
            http_version=scope.get("http_version", "1.1"),
            scheme=scheme.lower(),
            host=host,
            path=path if path is not None else scope["path"],
            raw_path=raw_path if raw_path is not None else raw_path_of(scope),
            query=query if query is not None else scope.get("query_string", b"").decode("latin-1"),
            ip=who.client,
            prefix=prefix_of(who.client) or who.client,
            peer=who.peer,
            peer_trusted=who.peer_trusted,
            user_agent=headers.get("user-agent", ""),
            headers=headers,
            site_busy=site_busy,
        )


def raw_path_of(scope: Scope) -> str:
    """The path as the client sent it; re-encoded from the decoded path when the server does not pass it on."""
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if raw else quote(scope["path"], safe="/:@!$&'()*+,;=-._~")


def first_value(header: str | None) -> str:
    """The first element of a comma-separated header a proxy may have appended to."""
    return header.split(",", 1)[0].strip() if header else ""


def has_dot_segments(path: str) -> bool:
    """A decoded path with "." or ".." segments. The upstream resolves them after gate has matched the path, so
    "/feed/../essays/" would pass as a feed: such requests are refused (browsers never send them). A segment's
    path parameters do not hide it: Tomcat and Spring read "/feed/..;x=1/essays/" as "/essays/"."""
    return "." in path and any(
        segment.partition(";")[0] in (".", "..") for segment in path.replace("\\", "/").split("/")
    )
