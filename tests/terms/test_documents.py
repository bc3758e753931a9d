"""The documents generated from the owner's terms, as the clients that read them see them: robots.txt through a
real RFC 9309 parser (protego), TDMRep, the terms as JSON and HTML, the Content-Usage values; and the `terms:`
section as rules files state it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin

import pytest
from protego import Protego

from gate.policy import shipped_rules
from gate.policy.load import load_policy
from gate.terms.documents import ai_robots_names, merged_robots, tdmrep_json, terms_html, terms_json
from gate.terms.model import Terms, robots_pattern, terms_path_problem
from tests.policy.helpers import GOOD, policy_from

SITE = "https://blog.example"
TERMS_PATH = "/.gate/terms"
UPSTREAM = (Path(__file__).resolve().parent.parent / "data" / "site" / "robots.txt").read_text()
AI_NAMES = ["ClaudeBot", "GPTBot"]
POLICY_URL = "https://blog.example/.gate/terms"
OPEN_TERMS = """
terms:
  version: 2026-12-01
  contact: mailto:owner@blog.example
  paths:
    - {path: /open/**, uses: {train-ai: y}, license: CC-BY-4.0, attribution: true}
  crawl_rate: 6/min
"""


@pytest.fixture
def terms(tmp_path: Path) -> Terms:
    """Site-wide train-ai=n, search=y (the defaults), with /open/** opened to training."""
    return policy_from(tmp_path, OPEN_TERMS).terms


def robots(terms: Terms, upstream: str = UPSTREAM) -> str:
    return merged_robots(upstream, terms, AI_NAMES, TERMS_PATH)


def may_fetch(text: str, agent: str, path: str) -> bool:
    return bool(Protego.parse(text).can_fetch(SITE + path, agent))


# The terms themselves


def test_terms_are_read_from_the_rules(terms: Terms) -> None:
    assert terms.version == "2026-12-01"  # a YAML date, read as the text the owner wrote
    assert dict(terms.uses) == {"train-ai": "n", "search": "y"}
    assert [(entry.path, dict(entry.uses)) for entry in terms.paths] == [("/open/**", {"train-ai": "y"})]
    assert (terms.crawl_rate, terms.crawl_period) == (6, 60.0)


def test_the_uses_on_a_path_are_the_sites_overridden_by_the_first_matching_entry(terms: Terms) -> None:
    assert dict(terms.uses_for("/page.html")) == {"train-ai": "n", "search": "y"}
    assert dict(terms.uses_for("/open/essay.html")) == {"train-ai": "y", "search": "y"}
    assert dict(terms.uses_for("/open")) == {"train-ai": "n", "search": "y"}  # /open/** needs the slash
    assert terms.content_usage("/page.html") == "train-ai=n, search=y"
    assert terms.content_usage("/open/a/b.html") == "train-ai=y, search=y"
    assert (terms.tdm_reserved("/page.html"), terms.tdm_reserved("/open/x")) == (True, False)
    assert [entry.path for entry in terms.opened("train-ai")] == ["/open/**"]
    assert terms.opened("search") == []


@pytest.mark.parametrize(
    ("glob", "pattern"),
    [("/open/**", "/open/"), ("/**", "/"), ("/essay.html", "/essay.html$")],
)
def test_a_terms_path_becomes_the_robots_pattern_that_means_the_same(glob: str, pattern: str) -> None:
    assert terms_path_problem(glob) is None
    assert robots_pattern(glob) == pattern


@pytest.mark.parametrize("glob", ["/feed*", "/open/*.html", "/a?c/**", "/a/*/b/**", "open/**"])
def test_a_glob_robots_txt_cannot_say_is_refused(glob: str) -> None:
    assert terms_path_problem(glob) is not None


# robots.txt, read by a real RFC 9309 parser


@pytest.mark.parametrize("agent", ["GPTBot", "ClaudeBot"])
def test_ai_crawlers_may_fetch_only_the_opened_paths_and_the_terms(terms: Terms, agent: str) -> None:
    text = robots(terms)
    assert may_fetch(text, agent, "/open/x")
    assert may_fetch(text, agent, "/open/deep/essay.html?page=2")
    assert may_fetch(text, agent, TERMS_PATH)
    for path in ("/", "/page.html", "/private/x", "/open", "/openly.html", "/OPEN/x", "/open%2Fx"):
        assert not may_fetch(text, agent, path), path


def test_a_crawler_that_resolves_dot_segments_is_not_let_out_of_an_opened_path(terms: Terms) -> None:
    # A crawler resolves the reference (RFC 3986) before it matches robots.txt; gate itself refuses a request that
    # still has . or .. segments (tests/test_terms.py), so "/open/../page.html" never reaches the site.
    text = robots(terms)
    for trick in ("/open/../page.html", "/open/./../private/x", "/open/x/../../page.html"):
        assert not may_fetch(text, "GPTBot", urljoin(SITE + "/", trick).removeprefix(SITE)), trick


def test_the_star_groups_allow_lines_do_not_leak_into_the_ai_group(terms: Terms) -> None:
    text = robots(terms)
    assert may_fetch(text, "SomeBrowser", "/public/index.html")
    assert not may_fetch(text, "GPTBot", "/public/index.html")
    assert "Allow: /public/" not in text.split("# The site's own robots.txt")[0]  # gate's groups


def test_an_unlisted_client_follows_the_upstreams_star_group(terms: Terms) -> None:
    text = robots(terms)
    assert may_fetch(text, "SomeBrowser", "/page.html")
    assert may_fetch(text, "Googlebot", "/page.html")
    assert not may_fetch(text, "SomeBrowser", "/private/x")
    assert not may_fetch(text, "Googlebot", "/private/x")


def test_the_upstreams_own_groups_and_sitemap_are_kept(terms: Terms) -> None:
    text = robots(terms)
    assert text.endswith("# The site's own robots.txt\n" + UPSTREAM.rstrip("\n") + "\n")  # after gate's groups
    for path in ("/", "/open/x", TERMS_PATH, "/public/"):
        assert not may_fetch(text, "BadBot", path), path
    assert list(Protego.parse(text).sitemaps) == ["https://blog.example/sitemap.xml"]


def test_every_client_reads_the_content_usage_preferences(terms: Terms) -> None:
    lines = robots(terms).split("# The site's own robots.txt")[0].rstrip("\n").splitlines()
    assert lines[0].startswith("# Added by gate") and TERMS_PATH in lines[0]
    usage = ["Content-Usage: train-ai=n, search=y", "Content-Usage: /open/ train-ai=y, search=y"]
    assert lines[1:4] == ["User-agent: *", *usage]
    assert lines[-2:] == usage  # the AI group's, which inherits nothing from *


def test_without_an_upstream_robots_txt_only_gates_groups_are_served(terms: Terms) -> None:
    text = robots(terms, upstream="")
    assert text.startswith("# Added by gate")
    assert "Sitemap" not in text
    assert "Disallow: /private/" not in text
    assert may_fetch(text, "SomeBrowser", "/private/x")
    assert not may_fetch(text, "GPTBot", "/page.html")
    assert may_fetch(text, "GPTBot", "/open/x")


def test_a_license_line_only_when_the_terms_name_a_license_document(tmp_path: Path, terms: Terms) -> None:
    assert "License:" not in robots(terms)
    licensed = policy_from(tmp_path, "terms: {license_document: 'https://blog.example/license.xml'}").terms
    assert "License: https://blog.example/license.xml" in robots(licensed).splitlines()


def test_the_shipped_agent_lists_name_ai_crawlers_only(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, "agents: [shipped:agents/*.yaml]")
    names = ai_robots_names(policy.fingerprinter.catalog.agents)
    assert {"GPTBot", "ClaudeBot", "CCBot"} <= set(names)
    assert {"Googlebot", "bingbot", "ChatGPT-User"}.isdisjoint(names)
    assert names == sorted(names, key=str.lower)
    assert all(" " not in name for name in names)


# TDMRep and the terms documents


def test_tdmrep_puts_the_opened_path_first_and_reserves_the_rest(terms: Terms) -> None:
    policy = SITE + TERMS_PATH
    assert tdmrep_json(terms, policy) == [
        {"location": "/open/*", "tdm-reservation": 0, "tdm-policy": policy},
        {"location": "/*", "tdm-reservation": 1, "tdm-policy": policy},
    ]


def test_the_terms_as_json_say_what_is_allowed_where_and_how_to_accept(terms: Terms) -> None:
    document = terms_json(terms, SITE, "/.gate/")
    assert document["version"] == "2026-12-01"
    assert document["site"] == SITE
    assert document["contact"] == "mailto:owner@blog.example"
    assert document["uses"] == {"train-ai": "n", "search": "y"}
    assert document["paths"] == [
        {
            "path": "/open/**",
            "robots_pattern": "/open/",
            "uses": {"train-ai": "y"},
            "license": "CC-BY-4.0",
            "license_url": None,
            "attribution": True,
        }
    ]
    assert document["crawl_rate"] == {"requests": 6, "per_seconds": 60.0}
    accept = document["accept"]
    assert (accept["url"], accept["method"], accept["content_type"]) == (
        f"{SITE}/.gate/terms/accept",
        "POST",
        "application/json",
    )
    assert accept["body"]["terms_version"] == "2026-12-01"
    assert accept["body"]["purpose"] == "one of: train-ai"  # what some path is opened to


def test_the_terms_page_escapes_the_owners_text(tmp_path: Path) -> None:
    owner_text = (
        "# Our terms\n\nNo <script>alert('x')</script> here, <b>really</b>.\n\n"
        "[a link](javascript:alert(1)) and [a good one](https://blog.example/about)\n"
    )
    (tmp_path / "terms.md").write_text(owner_text)
    terms = policy_from(
        tmp_path, "terms: {text_file: terms.md, contact: '<img src=x onerror=alert(1)>@x.example', version: '<v1>'}"
    ).terms
    page = terms_html(terms, SITE, "/.gate/")
    assert "<h1>Our terms</h1>" in page
    assert "<script>" not in page
    assert "&lt;script&gt;alert(" in page
    assert "<b>" not in page
    assert 'href="javascript:' not in page  # shown as text, never a link
    assert '<a href="https://blog.example/about">a good one</a>' in page
    assert "<img" not in page
    assert "<v1>" not in page
    assert "&lt;v1&gt;" in page


def test_the_terms_page_lists_the_uses_per_path_and_the_accept_url(terms: Terms) -> None:
    page = terms_html(terms, SITE, "/.gate/")
    assert "<td><code>the whole site</code></td><td>train-ai=n, search=y</td><td></td>" in page
    row = "<td><code>/open/**</code></td><td>train-ai=y, search=y</td><td>CC-BY-4.0 (attribution required)</td>"
    assert row in page
    assert f"POST {SITE}/.gate/terms/accept" in page
    assert "6 requests per 60 s" in page


# The terms section of rules files


def test_the_good_fixture_reads_every_terms_key() -> None:
    terms = load_policy(GOOD / "terms.yaml").terms
    essays, drafts = terms.paths
    assert terms.version == "2026-12-01"
    assert terms.contact == "mailto:owner@blog.example"
    assert dict(terms.uses) == {"train-ai": "n", "search": "y", "ai-input": "n"}
    assert (essays.path, dict(essays.uses), essays.license, essays.attribution) == (
        "/essays/**",
        {"train-ai": "y"},
        "CC-BY-4.0",
        True,
    )
    assert essays.license_url == "https://creativecommons.org/licenses/by/4.0/"
    assert (drafts.path, dict(drafts.uses)) == ("/drafts/**", {"search": "n"})
    assert (drafts.license, drafts.license_url, drafts.attribution) == ("", "", False)
    assert (terms.crawl_rate, terms.crawl_period) == (30, 60.0)
    assert terms.consent_lifetime == 90 * 86400
    assert terms.license_document == "https://blog.example/license.xml"
    assert terms.robots_deny_after == 20
    assert terms.text == (GOOD / "parts" / "terms.md").read_text()
    assert terms.content_usage("/drafts/x") == "train-ai=n, search=n, ai-input=n"


def test_the_shipped_terms_reserve_training_and_open_nothing() -> None:
    terms = load_policy(shipped_rules()).terms
    assert dict(terms.uses) == {"train-ai": "n", "search": "y"}
    assert terms.paths == ()
    assert terms.opened("train-ai") == []
    assert terms.content_usage("/any/page.html") == "train-ai=n, search=y"
    assert (terms.crawl_rate, terms.crawl_period) == (60, 60.0)
    assert terms.robots_deny_after is None
    assert terms.source.startswith(str(shipped_rules() / "terms.yaml"))


def test_a_rules_file_with_its_own_terms_wins_over_the_shipped_ones(tmp_path: Path) -> None:
    terms = policy_from(tmp_path, "import: [shipped:default.yaml]\n" + OPEN_TERMS).terms
    assert terms.version == "2026-12-01"
    assert [entry.path for entry in terms.opened("train-ai")] == ["/open/**"]


def test_an_opened_path_the_owners_robots_txt_disallows_stays_disallowed(tmp_path: Path) -> None:
    terms = policy_from(tmp_path, OPEN_TERMS).terms
    text = robots(terms, upstream="User-agent: *\nDisallow: /open/\n")
    assert not may_fetch(text, "GPTBot", "/open/x")  # gate's Allow does not outrank the owner's own Disallow
    assert not may_fetch(text, "SomeBrowser", "/open/x")


def test_the_most_specific_path_entry_wins_everywhere(tmp_path: Path) -> None:
    terms = policy_from(
        tmp_path,
        """
terms:
  paths:
    - {path: /blog/**, uses: {train-ai: y}}
    - {path: /blog/private/**, uses: {train-ai: n}}
""",
    ).terms
    assert terms.content_usage("/blog/private/p.html") == "train-ai=n, search=y"
    assert terms.tdm_reserved("/blog/private/p.html") and not terms.tdm_reserved("/blog/a.html")
    assert terms.opens("/blog/a.html", "train-ai") and not terms.opens("/blog/private/p.html", "train-ai")
    text = robots(terms)
    assert may_fetch(text, "GPTBot", "/blog/a.html")
    assert not may_fetch(text, "GPTBot", "/blog/private/p.html")
    assert tdmrep_json(terms, POLICY_URL)[0]["location"] == "/blog/private/*"


def test_an_exact_path_stays_exact_in_robots_txt_and_tdmrep(tmp_path: Path) -> None:
    terms = policy_from(tmp_path, "terms:\n  paths: [{path: /about.html, uses: {train-ai: y}}]\n").terms
    text = robots(terms)
    assert may_fetch(text, "GPTBot", "/about.html")
    assert may_fetch(text, "GPTBot", "/about.html?v=2")  # a query string does not make it another path
    assert not may_fetch(text, "GPTBot", "/about.html.bak")
    assert tdmrep_json(terms, POLICY_URL)[0] == {
        "location": "/about.html$",
        "tdm-reservation": 0,
        "tdm-policy": POLICY_URL,
    }
