"""The challenge page and message pages: markup the CSP allows, escaping, locales; and one real-browser solve."""

from __future__ import annotations

import hashlib
import json
import re
import string
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from gate.challenge.pages import (
    CONTENT_SECURITY_POLICY,
    DEFAULT_LANGUAGE,
    LANGUAGES,
    LOCALES,
    ChallengeView,
    pick_locale,
    render_challenge_page,
    render_message_page,
    script_json,
)
from tests.support.browser import launched_chromium

LOCALE_DIR = Path(__file__).parents[2] / "gate" / "challenge" / "locales"
STATIC_URLS = {
    "solver.js": "/.gate/static/solver.js?v=abc123",
    "worker.js": "/.gate/static/worker.js?v=def456",
    "challenge.css": "/.gate/static/challenge.css?v=789abc",
}
TOKEN = "c1.eyJpZCI6IkFiQ2QiLCJraW5kIjoianMifQ.k1.Xq3kPz8VbN2mLr5tYw0uJc1dHs6gFe4aBi9oKx7nM2Q"
HOSTILE = "</script><script>alert(1)</script><!-- \"'&amp; \u2028"
MESSAGE_PAGES = [("cookies_title", "cookies_body"), ("failed_title", "failed_body"), ("wait_title", "wait_body")]


def make_view(**changes: object) -> ChallengeView:
    view = ChallengeView(
        token=TOKEN,
        difficulty=16,
        verify_url="/.gate/challenge/verify",
        nojs_url="/.gate/challenge/nojs?c=c1.abc.k1.sig",
        nojs_delay=5,
        static_urls=STATIC_URLS,
        locale=LOCALES["en"],
        contact="webmaster@blog.example",
        site_name="blog.example",
    )
    return replace(view, **changes)  # type: ignore[arg-type]


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    text: str = ""  # the raw content of a <script>


class ParsedPage(HTMLParser):
    """Every start tag with its attributes (<noscript> content included), script contents and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text: list[str] = []
        self._script: Element | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.elements.append(element)
        if tag == "script":
            self._script = element

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.text += data
        else:
            self.text.append(data)

    def all(self, tag: str) -> list[Element]:
        return [element for element in self.elements if element.tag == tag]

    def one(self, tag: str, **attrs: str) -> Element:
        found = [e for e in self.all(tag) if all(e.attrs.get(name) == value for name, value in attrs.items())]
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]

    def one_with_id(self, element_id: str) -> Element:
        found = [element for element in self.elements if element.attrs.get("id") == element_id]
        assert len(found) == 1, f"expected one element with id {element_id}, found {len(found)}"
        return found[0]


def parse(body: bytes) -> ParsedPage:
    page = ParsedPage()
    page.feed(body.decode("utf-8"))
    page.close()
    return page


def page_data(page: ParsedPage) -> dict[str, object]:
    element = page.one_with_id("gate-challenge")
    assert element.tag == "script" and element.attrs.get("type") == "application/json"
    data: dict[str, object] = json.loads(element.text)
    return data


def assert_csp_safe(body: bytes) -> None:
    """Nothing the CSP would block: no inline script, no style element or attribute, no event handlers, and
    every resource is a relative (same-origin) URL."""
    page = parse(body)
    assert not page.all("style")
    for element in page.elements:
        assert "style" not in element.attrs, element
        assert not any(name.startswith("on") for name in element.attrs), element
        if element.tag == "script":
            assert element.attrs.get("type") == "application/json" or (
                element.attrs.get("src") and not element.text.strip()
            ), element
        for name in ("src", "href"):
            value = element.attrs.get(name)
            if value is not None and element.tag in ("script", "link", "img"):
                assert value.startswith("/") and not value.startswith("//"), value


# --- the challenge page ----------------------------------------------------------------------------------------


def test_challenge_page_structure() -> None:
    body = render_challenge_page(make_view())
    page = parse(body)
    assert body.startswith(b"<!doctype html>")
    assert page.one("html").attrs["lang"] == "en"
    assert page.one("meta", name="viewport")
    assert page.one("meta", name="robots").attrs["content"] == "noindex, nofollow"
    assert page.one("link", rel="stylesheet").attrs["href"] == STATIC_URLS["challenge.css"]
    solver = page.one("script", src=STATIC_URLS["solver.js"])
    assert "defer" in solver.attrs
    assert page.all("main") and page.all("h1")
    progress = page.one_with_id("gate-progress")
    assert progress.tag == "progress" and progress.attrs["max"] == "100"
    assert page.one("label", **{"for": "gate-progress"})
    status = page.one_with_id("gate-status")
    assert status.attrs["role"] == "status" and status.attrs["aria-live"] == "polite"
    assert "hidden" in page.one_with_id("gate-stats").attrs
    text = " ".join(page.text)
    assert LOCALES["en"]["why"] in text
    assert "blog.example" in text


def test_challenge_page_form_posts_the_contract_fields() -> None:
    page = parse(render_challenge_page(make_view()))
    form = page.one_with_id("gate-form")
    assert form.tag == "form"
    assert form.attrs["method"] == "post"
    assert form.attrs["action"] == "/.gate/challenge/verify"
    inputs = {element.attrs["name"]: element.attrs.get("value") for element in page.all("input")}
    assert inputs == {"challenge": TOKEN, "nonce": "", "elapsed_ms": ""}


def test_challenge_page_data_block() -> None:
    page = parse(render_challenge_page(make_view(difficulty=21, locale=LOCALES["de"])))
    data = page_data(page)
    assert data["challenge"] == TOKEN
    assert data["difficulty"] == 21
    assert data["verifyUrl"] == "/.gate/challenge/verify"
    assert data["workerUrl"] == STATIC_URLS["worker.js"]
    assert data["lang"] == "de"
    assert data["strings"] == {key: LOCALES["de"][key] for key in ("progress", "done", "error")}


def test_challenge_page_is_csp_safe() -> None:
    assert_csp_safe(render_challenge_page(make_view()))
    assert b"<style" not in render_challenge_page(make_view())


@pytest.mark.parametrize("lang", LANGUAGES)
def test_challenge_page_in_every_language(lang: str) -> None:
    body = render_challenge_page(make_view(locale=LOCALES[lang]))
    assert_csp_safe(body)
    page = parse(body)
    assert page.one("html").attrs["lang"] == lang
    text = " ".join(page.text)
    assert "{" not in text.replace("{percent}", ""), "a placeholder was left unfilled"
    assert LOCALES[lang]["nojs_link"] in text


def test_hostile_token_cannot_leave_the_data_block() -> None:
    token = "c1." + HOSTILE
    body = render_challenge_page(make_view(token=token, verify_url='/v"><script>x</script>'))
    page = parse(body)
    assert len(page.all("script")) == 2  # the data block and solver.js: no injected one
    assert page_data(page)["challenge"] == token
    assert page_data(page)["verifyUrl"] == '/v"><script>x</script>'
    assert page.one("input", name="challenge").attrs["value"] == token
    assert page.one_with_id("gate-form").attrs["action"] == '/v"><script>x</script>'
    block = body.split(b'id="gate-challenge">', 1)[1].split(b"</script>", 1)[0]
    assert b"<" not in block and b">" not in block and b"&" not in block
    assert_csp_safe(body)


def test_script_json_round_trips() -> None:
    value = {"a": HOSTILE, "b": ["<!--", "-->", "</SCRIPT >"], "c": "日本語"}
    text = script_json(value)
    assert json.loads(text) == value
    assert not set("<>&\u2028\u2029") & set(text)


def test_og_tags_copied_and_escaped() -> None:
    tags = [
        ("og:title", 'An essay about <things> & "quotes" \''),
        ("og:description", HOSTILE),
        ("twitter:card", "summary"),
        ('og:x" onload="alert(1)', "y"),
    ]
    body = render_challenge_page(make_view(og_tags=tags))
    page = parse(body)
    metas = [(e.attrs.get("property") or e.attrs.get("name"), e.attrs.get("content")) for e in page.all("meta")]
    for name, content in tags:
        assert (name, content) in metas
    assert page.one("meta", name="twitter:card").attrs["content"] == "summary"
    assert page.one("meta", property="og:title")
    assert len(page.all("script")) == 2
    assert_csp_safe(body)


def test_site_name_and_contact_escaped() -> None:
    body = render_challenge_page(make_view(site_name="<b>blog</b> & co", contact="Call <i>Ann</i> & Bob"))
    page = parse(body)
    text = " ".join(page.text)
    assert "<b>blog</b> & co" in text and "Call <i>Ann</i> & Bob" in text
    assert not page.all("b") and not page.all("i")
    assert b"&lt;b&gt;blog&lt;/b&gt; &amp; co" in body


@pytest.mark.parametrize(
    ("contact", "href"),
    [
        ("webmaster@blog.example", "mailto:webmaster@blog.example"),
        ("https://blog.example/contact?x=1&y=2", "https://blog.example/contact?x=1&y=2"),
        ("http://blog.example/", "http://blog.example/"),
        ("javascript:alert(1)", None),
        ("Ring 555-0100 <br> after noon", None),
        ('a"b@x.example', None),
    ],
)
def test_contact_links_only_mail_and_web_addresses(contact: str, href: str | None) -> None:
    page = parse(render_challenge_page(make_view(contact=contact)))
    links = [e.attrs.get("href") for e in page.all("a") if e.attrs.get("href") != make_view().nojs_url]
    assert links == ([href] if href else [])
    assert contact in " ".join(page.text)
    assert LOCALES["en"]["contact_intro"] in " ".join(page.text)


def test_no_contact_no_contact_paragraph() -> None:
    body = render_challenge_page(make_view(contact="  "))
    assert LOCALES["en"]["contact_intro"].encode() not in body
    assert b'class="contact"' not in body


def test_noscript_refresh_and_link() -> None:
    nojs_url = "/.gate/challenge/nojs?c=c1.eyJhIjoxfQ.k1.c2ln"
    page = parse(render_challenge_page(make_view(nojs_url=nojs_url, nojs_delay=7)))
    refresh = page.one("meta", **{"http-equiv": "refresh"})
    assert refresh.attrs["content"] == f"7; url={nojs_url}"
    assert page.one("a", href=nojs_url)
    text = " ".join(page.text)
    assert "in 7 seconds" in text and "wait 7 seconds" in text
    body = render_challenge_page(make_view(nojs_url=nojs_url, nojs_delay=7)).decode()
    assert re.search(r"<noscript><meta http-equiv=\"refresh\"[^>]*></noscript>", body)
    assert re.search(r"<noscript><div class=\"nojs\">.*?</div></noscript>", body, re.DOTALL)


def test_noscript_refresh_url_cannot_break_out() -> None:
    nojs_url = "/nojs?c='x\" y<z>&q=%41"
    page = parse(render_challenge_page(make_view(nojs_url=nojs_url)))
    content = page.one("meta", **{"http-equiv": "refresh"}).attrs["content"]
    assert content == "5; url=/nojs?c=%27x%22%20y%3Cz%3E&q=%41"
    assert page.one("a", rel="nofollow").attrs["href"] == nojs_url


@pytest.mark.parametrize("difficulty", [-1, 33])
def test_difficulty_out_of_range(difficulty: int) -> None:
    with pytest.raises(ValueError, match="difficulty"):
        render_challenge_page(make_view(difficulty=difficulty))


def test_difficulty_bounds_render() -> None:
    assert page_data(parse(render_challenge_page(make_view(difficulty=0))))["difficulty"] == 0
    assert page_data(parse(render_challenge_page(make_view(difficulty=32))))["difficulty"] == 32


def test_missing_static_url() -> None:
    with pytest.raises(ValueError, match=r"worker\.js"):
        render_challenge_page(make_view(static_urls={"solver.js": "/s.js", "challenge.css": "/c.css"}))


def test_content_security_policy() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["worker-src"] == "'self'"
    assert directives["child-src"] == "'self'"  # workers in Safari before 15.5
    assert directives["frame-src"] == "'none'"
    assert directives["style-src"] == "'self'"
    assert directives["form-action"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.isascii() and "\n" not in CONTENT_SECURITY_POLICY


# --- message pages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize(("title_key", "body_key"), MESSAGE_PAGES)
def test_message_pages(lang: str, title_key: str, body_key: str) -> None:
    strings = LOCALES[lang]
    body = render_message_page(strings, title_key, body_key, "ops@blog.example", STATIC_URLS, "403")
    assert_csp_safe(body)
    page = parse(body)
    assert not page.all("script")
    assert page.one("html").attrs["lang"] == lang
    assert page.one("link", rel="stylesheet").attrs["href"] == STATIC_URLS["challenge.css"]
    text = " ".join(page.text)
    assert strings[title_key] in text and strings[body_key] in text
    assert page.one("a", href="mailto:ops@blog.example")
    assert "403" in text


def test_message_page_escapes_and_omits() -> None:
    body = render_message_page(LOCALES["en"], "failed_title", "failed_body", "", {}, "<b>hint</b>")
    page = parse(body)
    assert not page.all("b") and not page.all("link")
    assert "<b>hint</b>" in " ".join(page.text)
    assert b'class="contact"' not in body
    plain = render_message_page(LOCALES["en"], "failed_title", "failed_body", "", STATIC_URLS)
    assert b'class="hint"' not in plain


def test_message_page_unknown_key() -> None:
    with pytest.raises(KeyError):
        render_message_page(LOCALES["en"], "nonexistent_title", "failed_body", "", STATIC_URLS)


# --- locales ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        (None, "en"),
        ("", "en"),
        ("de", "de"),
        ("de-AT", "de"),
        ("DE-at", "de"),
        ("de_CH", "de"),
        ("ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7", "ja"),
        ("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", "fr"),
        ("en;q=0.5, es;q=0.8", "es"),
        ("es-419,es;q=0.9", "es"),
        ("zh-CN,zh;q=0.9", "en"),
        ("zh-CN, de;q=0.2", "de"),
        ("pt-BR, *;q=0.1", "en"),
        ("de;q=0, fr;q=0.001", "fr"),
        ("de;q=0", "en"),
        ("de;q=1.5, fr;q=0.5", "fr"),
        ("de;q=abc, ja;q=0.3", "ja"),
        ("de;q=nan, ja;q=0.3", "ja"),
        ("es, de", "es"),
        ("es;q=0.5, de;q=0.5", "es"),
        ("sr-Latn-RS, ja;q=0.2", "ja"),
        ("en-GB;level=1;q=0.9, de;q=0.95", "de"),
        (";;;,,,==q", "en"),
        ("\x00\xff garbage \u2603", "en"),
        ("x" * 10000, "en"),
        (",".join(["xx"] * 5000) + ",de", "en"),
        ("*", "en"),
    ],
)
def test_pick_locale(header: str | None, lang: str) -> None:
    assert pick_locale(header).lang == lang


def test_pick_locale_returns_the_loaded_strings() -> None:
    assert pick_locale("fr") is LOCALES["fr"]
    assert pick_locale(None) is LOCALES[DEFAULT_LANGUAGE]
    assert LOCALES["fr"]["title"] != LOCALES["en"]["title"]


def _locale_file(lang: str) -> dict[str, str]:
    texts: dict[str, str] = json.loads((LOCALE_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return texts


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_locale_file_complete(lang: str) -> None:
    english = _locale_file("en")
    texts = _locale_file(lang)
    missing, extra = set(english) - set(texts), set(texts) - set(english)
    assert not missing and not extra, f"{lang}.json: missing {missing}, extra {extra}"
    for key, text in texts.items():
        assert isinstance(text, str) and text.strip() == text and text, f"{lang}.json: {key}"
        assert _placeholders(text) == _placeholders(english[key]), f"{lang}.json: placeholders of {key}"
        if lang != "en":
            assert text != english[key] or key in ("nojs_link",), f"{lang}.json: {key} is not translated"


def test_locale_keys_the_pages_use() -> None:
    needed = {
        "title", "heading", "intro", "why", "moment", "progress_label", "progress", "done", "error", "nojs",
        "nojs_manual", "nojs_link", "contact_intro", "cookies_title", "cookies_body", "failed_title",
        "failed_body", "wait_title", "wait_body",
    }  # fmt: skip
    assert needed <= set(_locale_file("en"))
    assert _placeholders(LOCALES["en"]["progress"]) == {"percent"}
    assert _placeholders(LOCALES["en"]["intro"]) == {"site"}
    assert _placeholders(LOCALES["en"]["nojs"]) == {"seconds"}


def test_package_files_present() -> None:
    folder = resources.files("gate.challenge")
    for name in STATIC_URLS:
        assert (folder / "static" / name).read_bytes()
    for lang in LANGUAGES:
        assert (folder / "locales" / f"{lang}.json").is_file()


# --- the real browser: Debian's Chromium solves a challenge under the CSP ----------------------------------------


def leading_zero_bits(digest: bytes) -> int:
    return len(digest) * 8 - int.from_bytes(digest, "big").bit_length()


class ChallengeSite:
    """A stand-in for gate: the page with the CSP, the static files, and a verify endpoint checking with hashlib."""

    DIFFICULTY = 12

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, list[str]]]] = []
        self.posted = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/":
                    view = make_view(difficulty=site.DIFFICULTY, og_tags=[("og:title", "An essay")])
                    self.reply(200, "text/html; charset=utf-8", render_challenge_page(view), csp=True)
                elif path.startswith("/.gate/static/") and path.rsplit("/", 1)[1] in STATIC_URLS:
                    name = path.rsplit("/", 1)[1]
                    body = (resources.files("gate.challenge") / "static" / name).read_bytes()
                    kind = "text/css" if name.endswith(".css") else "text/javascript"
                    self.reply(200, f"{kind}; charset=utf-8", body)
                elif path == "/essay":
                    self.reply(200, "text/html; charset=utf-8", b"<!doctype html><title>essay</title>", csp=True)
                elif path == "/favicon.ico":
                    self.reply(204, "image/x-icon", b"")
                else:
                    self.reply(404, "text/plain", b"not found")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                fields = parse_qs(self.rfile.read(length).decode("ascii"), keep_blank_values=True)
                site.posts.append((self.headers.get("Content-Type", ""), fields))
                site.posted.set()
                self.send_response(303)
                self.send_header("Location", "/essay")
                self.send_header("Set-Cookie", "gate_pass=ok; Path=/; HttpOnly; SameSite=Lax")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def reply(self, status: int, kind: str, body: bytes, csp: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                if csp:
                    self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def challenge_site() -> Iterator[ChallengeSite]:
    site = ChallengeSite()
    thread = threading.Thread(target=site.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        site.server.shutdown()
        site.server.server_close()
        thread.join(5)


# Reports CSP violations to the console (Playwright's init scripts run outside the page's CSP).
REPORT_VIOLATIONS = (
    "document.addEventListener('securitypolicyviolation', (e) => "
    "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
)


@pytest.mark.timeout(30)
def test_chromium_solves_and_posts_under_the_csp(challenge_site: ChallengeSite) -> None:
    problems: list[str] = []
    with launched_chromium() as browser:
        context = browser.new_context(viewport={"width": 320, "height": 640})
        page = context.new_page()
        page.add_init_script(REPORT_VIOLATIONS)
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(challenge_site.url + "/", timeout=10_000)
        assert challenge_site.posted.wait(8), "the solver posted nothing within 8 s"
        page.wait_for_url("**/essay", timeout=5_000)
        cookies = {cookie["name"]: cookie["value"] for cookie in context.cookies()}
        context.close()

    assert len(challenge_site.posts) == 1
    content_type, fields = challenge_site.posts[0]
    assert content_type == "application/x-www-form-urlencoded"
    assert set(fields) == {"challenge", "nonce", "elapsed_ms"}
    challenge, nonce, elapsed = fields["challenge"][0], fields["nonce"][0], fields["elapsed_ms"][0]
    assert challenge == TOKEN
    assert re.fullmatch(r"0|[1-9][0-9]*", nonce), nonce
    digest = hashlib.sha256(f"{challenge}{nonce}".encode("ascii")).digest()
    assert leading_zero_bits(digest) >= ChallengeSite.DIFFICULTY
    assert elapsed.isdigit() and int(elapsed) < 8000
    assert cookies == {"gate_pass": "ok"}
    assert problems == []
