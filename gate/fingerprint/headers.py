"""Header consistency: does a request that claims to come from a browser carry the headers that browser sends?

Each finding is a named signal with a default weight (the policy can change weights). Client hints and Sec-Fetch-*
are only sent to secure contexts (https, or localhost), so their absence counts only there; likewise browsers send
`br`/`zstd` in Accept-Encoding only over https.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gate.facts import Facts
from gate.fingerprint.browsers import BrowserInfo

# Default weights: documented in docs/rules.md; a policy overrides them with `signal_weights:`.
SIGNAL_WEIGHTS: dict[str, float] = {
    "empty-user-agent": 3,
    "http-1.0": 2,
    "no-client-hints": 3,
    "client-hints-mismatch": 4,
    "client-hints-not-chromium": 4,
    "headless-client-hints": 6,
    "sec-fetch-invalid": 4,
    "sec-fetch-missing": 2,
    "no-accept": 2,
    "no-accept-language": 2,
    "no-accept-encoding": 2,
    "library-headers": 4,
    "impostor": 8,  # names an agent listed under `verified:` that none of its proofs proves
    "unconfirmed": 0,  # names such an agent; its proof could not be checked yet (gate/verify)
    "invalid-signature": 4,  # a Web Bot Auth signature that is malformed, expired, replayed or does not match
}

SEC_FETCH_VALUES = {
    "sec-fetch-site": frozenset({"cross-site", "same-origin", "same-site", "none"}),
    "sec-fetch-mode": frozenset({"cors", "navigate", "no-cors", "same-origin", "websocket"}),
    "sec-fetch-dest": frozenset(
        {
            "audio",
            "audioworklet",
            "document",
            "embed",
            "empty",
            "fencedframe",
            "font",
            "frame",
            "iframe",
            "image",
            "json",
            "manifest",
            "object",
            "paintworklet",
            "report",
            "script",
            "serviceworker",
            "sharedworker",
            "style",
            "track",
            "video",
            "webidentity",
            "worker",
            "xslt",
        }
    ),
    "sec-fetch-user": frozenset({"?1"}),
}
# Families that send client hints whenever their engine is Chromium 90 or newer (the hints shipped in 89).
CLIENT_HINT_FAMILIES = frozenset({"Chrome", "Chrome Mobile", "Edge", "Edge Mobile", "Opera", "Chromium"})
CLIENT_HINTS_SINCE = 90
# Accept-Encoding values HTTP libraries send by default; browsers on https always add br (and now zstd).
LIBRARY_ENCODINGS = frozenset({"", "gzip, deflate", "gzip,deflate", "identity", "gzip", "deflate", "*"})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
_BRAND = re.compile(r'"([^"]*)"\s*;\s*v\s*=\s*"([^"]*)"')
_OS_GROUPS = {
    "Windows": "windows",
    "Mac OS X": "mac",
    "Android": "android",
    "Chrome OS": "chromeos",
    "iOS": "ios",
    "Linux": "linux",
    "Ubuntu": "linux",
    "Fedora": "linux",
    "Debian": "linux",
}
_PLATFORM_GROUPS = {
    "windows": "windows",
    "macos": "mac",
    "android": "android",
    "chrome os": "chromeos",
    "chromium os": "chromeos",
    "ios": "ios",
    "linux": "linux",
}
# (platform, os) pairs that look contradictory but are real: Chrome for Android's "desktop site" mode.
_COMPATIBLE_PLATFORMS = frozenset({("android", "linux")})


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


def is_secure_context(facts: Facts) -> bool:
    if facts.scheme == "https":
        return True
    host = facts.host.rsplit(":", 1)[0] if not facts.host.endswith("]") else facts.host
    return host.lower() in LOCAL_HOSTS or host.lower().endswith(".localhost")


def header_signals(facts: Facts, browser: BrowserInfo | None, claims_browser: bool) -> list[Signal]:
    """Signals for one request. `claims_browser`: the User-Agent says browser, so browser headers are expected."""
    signals: list[Signal] = []
    if not facts.user_agent.strip():
        signals.append(Signal("empty-user-agent", "no User-Agent header"))
    if facts.http_version == "1.0":
        signals.append(Signal("http-1.0", "HTTP/1.0, which no current browser speaks"))
    if not claims_browser or browser is None:
        return signals
    headers = facts.headers
    secure = is_secure_context(facts)
    signals += client_hint_signals(headers, browser, secure)
    signals += sec_fetch_signals(facts, browser, secure)
    for name in ("accept", "accept-language", "accept-encoding"):
        if name not in headers:
            signals.append(Signal(f"no-{name}", f"a browser always sends {name.title()}"))
    library = library_tells(facts, secure)
    if len(library) >= 2:
        signals.append(
            Signal("library-headers", "browser User-Agent with an HTTP library's headers: " + ", ".join(library))
        )
    return signals


def client_hint_signals(headers: dict[str, str], browser: BrowserInfo, secure: bool) -> list[Signal]:
    brands_header = headers.get("sec-ch-ua")
    if brands_header is None:
        preflight = "access-control-request-method" in headers  # CORS preflights carry no client hints
        expected = (
            secure
            and not preflight
            and browser.family in CLIENT_HINT_FAMILIES
            and (browser.chromium_major or 0) >= CLIENT_HINTS_SINCE
        )
        return (
            [Signal("no-client-hints", f"{browser.family} {browser.chromium_major} sends Sec-CH-UA")]
            if expected
            else []
        )
    if not browser.is_chromium:
        return [Signal("client-hints-not-chromium", f"Sec-CH-UA from {browser.family}, which does not send it")]
    brands = dict(_BRAND.findall(brands_header))
    if "HeadlessChrome" in brands:
        return [Signal("headless-client-hints", "Sec-CH-UA names HeadlessChrome")]
    signals = []
    chromium = brands.get("Chromium")
    if (
        chromium is not None
        and browser.chromium_major is not None
        and chromium.split(".")[0] != str(browser.chromium_major)
    ):
        signals.append(
            Signal("client-hints-mismatch", f"Sec-CH-UA says Chromium {chromium}, User-Agent {browser.chromium_major}")
        )
    platform = headers.get("sec-ch-ua-platform", "").strip().strip('"').lower()
    platform_group = _PLATFORM_GROUPS.get(platform)
    os_group = _OS_GROUPS.get(browser.os)
    if (
        platform_group
        and os_group
        and platform_group != os_group
        and (platform_group, os_group) not in _COMPATIBLE_PLATFORMS
    ):
        signals.append(
            Signal("client-hints-mismatch", f"Sec-CH-UA-Platform {platform!r} but User-Agent OS {browser.os}")
        )
    return signals


def sec_fetch_signals(facts: Facts, browser: BrowserInfo, secure: bool) -> list[Signal]:
    headers = facts.headers
    invalid = [
        f"{name}: {headers[name]!r}"
        for name, allowed in SEC_FETCH_VALUES.items()
        if name in headers and headers[name].strip().lower() not in allowed
    ]
    if invalid:
        return [Signal("sec-fetch-invalid", "; ".join(invalid))]
    navigation = facts.method == "GET" and "text/html" in headers.get("accept", "")
    if secure and navigation and "sec-fetch-mode" not in headers and sends_sec_fetch(browser):
        return [Signal("sec-fetch-missing", f"{browser.family} {browser.major} sends Sec-Fetch-* on navigations")]
    return []


def sends_sec_fetch(browser: BrowserInfo) -> bool:
    """Browsers that send Fetch Metadata: Chromium 80+, Firefox 90+, Safari 17+ (16.4 rounded up)."""
    major = browser.major or 0
    if browser.chromium_major is not None:
        return browser.chromium_major >= 80
    if browser.family.startswith("Firefox"):
        return major >= 90
    if browser.family in ("Safari", "Mobile Safari"):
        return major >= 17
    return False


def library_tells(facts: Facts, secure: bool) -> list[str]:
    """What in a browser-claiming request looks like an HTTP library's defaults."""
    headers = facts.headers
    tells = []
    if headers.get("accept", "").strip() == "*/*" and facts.method == "GET" and "sec-fetch-dest" not in headers:
        tells.append("Accept: */*")
    encoding = headers.get("accept-encoding", "").strip().lower()
    if secure and encoding in LIBRARY_ENCODINGS:
        tells.append(f"Accept-Encoding: {encoding or '(none)'}")
    if "accept-language" not in headers:
        tells.append("no Accept-Language")
    return tells
