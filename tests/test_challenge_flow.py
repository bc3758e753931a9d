"""The challenge through a running gate and real Redis: page, solution, pass cookie, budget, replay, two instances."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gate.challenge.pow import work_done
from gate.keys import write_key_file
from tests.support.gate_process import GateProcess, start_gate
from tests.support.nginx import Nginx
from tests.support.solver import read_challenge, solve, submit

RULES = """
agents: [shipped:agents/*.yaml]
rules:
  - {name: site-files, match: {path: [/robots.txt, /.gate/**]}, action: allow}
  - {name: hard, match: {path: /hard/**}, action: challenge, difficulty: 20, status: 429}
default: {action: challenge, difficulty: 8}
"""
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "secret.key"
    write_key_file(path)
    return path


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, nginx: Nginx, redis_url: str, key_file: Path, rules_file: Path
) -> Iterator[tuple[GateProcess, GateProcess]]:
    """Two gate instances sharing one key file and one Redis, as behind a load balancer."""
    options = ("--rules", str(rules_file), "--store", redis_url, "--secret-file", str(key_file), "--pass-budget", "5")
    first = start_gate(tmp_path_factory.mktemp("first"), nginx.url, *options)
    second = start_gate(tmp_path_factory.mktemp("second"), nginx.url, *options)
    yield first, second
    first.stop()
    second.stop()


def client(gate: GateProcess) -> httpx.Client:
    return httpx.Client(base_url=gate.url, headers={"User-Agent": UA}, timeout=10)


def test_a_challenged_page_serves_the_challenge(pair: tuple[GateProcess, GateProcess]) -> None:
    with client(pair[0]) as browser:
        page = browser.get("/page.html")
    assert page.status_code == 200
    assert "gate-challenge" in page.text
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert "rule" not in " ".join(page.headers.keys()).lower()  # the rule name never leaks to the client
    assert read_challenge(page.text).difficulty == 8


def test_a_rule_can_set_the_status_and_difficulty(pair: tuple[GateProcess, GateProcess]) -> None:
    with client(pair[0]) as browser:
        page = browser.get("/hard/x")
    assert page.status_code == 429
    assert read_challenge(page.text).difficulty >= 20


def test_a_solution_buys_a_cookie_and_a_redirect_back(pair: tuple[GateProcess, GateProcess], site_root: Path) -> None:
    with client(pair[0]) as browser:
        challenge = read_challenge(browser.get("/page.html?from=test").text)
        answer = submit(browser, challenge)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/page.html?from=test"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
        page = browser.get("/page.html")
    assert page.status_code == 200
    assert page.content == (site_root / "page.html").read_bytes()


def test_a_solution_is_spent_once_across_instances(pair: tuple[GateProcess, GateProcess]) -> None:
    first, second = pair
    with client(first) as browser:
        challenge = read_challenge(browser.get("/page.html").text)
        nonce = solve(challenge.token, challenge.difficulty)
        assert submit(browser, challenge, nonce).status_code == 303
    with client(second) as replayer:
        replayer.get("/page.html")  # a challenge page of its own first, as a browser would have seen
        again = submit(replayer, challenge, nonce)
    assert again.status_code == 200  # a fresh challenge, not a pass
    assert "gate_pass" not in again.headers.get("set-cookie", "")
    assert "gate-challenge" in again.text


def test_a_pass_from_one_instance_works_on_the_other(pair: tuple[GateProcess, GateProcess]) -> None:
    first, second = pair
    with client(first) as browser:
        submit(browser, read_challenge(browser.get("/page.html").text))
        cookies = browser.cookies
    with httpx.Client(base_url=second.url, headers={"User-Agent": UA}, cookies=cookies) as other:
        assert other.get("/page.html").status_code == 200


def test_a_pass_is_worthless_with_another_user_agent(pair: tuple[GateProcess, GateProcess]) -> None:
    with client(pair[0]) as browser:
        submit(browser, read_challenge(browser.get("/page.html").text))
        other = browser.get("/page.html", headers={"User-Agent": UA.replace("131", "132")})
    assert "gate-challenge" in other.text


def test_a_used_up_budget_means_a_harder_challenge(pair: tuple[GateProcess, GateProcess]) -> None:
    with client(pair[0]) as browser:
        submit(browser, read_challenge(browser.get("/page.html").text))
        statuses = [browser.get(f"/page.html?n={n}").status_code for n in range(5)]
        after = browser.get("/page.html")
    assert statuses == [200] * 5
    assert "gate-challenge" in after.text
    assert read_challenge(after.text).difficulty > 8
    with client(pair[1]) as newcomer:  # the same network without the cookie pays the penalty too
        assert read_challenge(newcomer.get("/page.html").text).difficulty > 8


def test_wrong_work_is_refused(pair: tuple[GateProcess, GateProcess]) -> None:
    with client(pair[0]) as browser:
        challenge = read_challenge(browser.get("/page.html").text)
        wrong = next(str(n) for n in range(10**6) if not work_done(challenge.token, str(n), challenge.difficulty))
        answer = submit(browser, challenge, wrong)
    assert answer.status_code == 200
    assert "gate_pass" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize("token", ["", "c1.x.y.z", "garbage" * 50])
def test_a_forged_challenge_fails_plainly(pair: tuple[GateProcess, GateProcess], token: str) -> None:
    with client(pair[0]) as browser:
        answer = browser.post("/.gate/challenge/verify", data={"challenge": token, "nonce": "1"})
    assert answer.status_code == 400
    assert "gate_pass" not in answer.headers.get("set-cookie", "")


def test_the_no_javascript_path_waits_then_passes(pair: tuple[GateProcess, GateProcess]) -> None:
    with client(pair[0]) as browser:
        challenge = read_challenge(browser.get("/page.html").text)
        early = browser.get(challenge.nojs_url, follow_redirects=False)
        assert early.status_code == 200 and "gate_pass" not in early.headers.get("set-cookie", "")
        time.sleep(challenge.nojs_delay)
        late = browser.get(challenge.nojs_url, follow_redirects=False)
    assert late.status_code == 303
    assert "gate_pass=" in late.headers["set-cookie"]


def test_a_client_that_keeps_no_cookies_is_told_why(pair: tuple[GateProcess, GateProcess]) -> None:
    with client(pair[0]) as forgetful:
        challenge = read_challenge(forgetful.get("/page.html").text)
        forgetful.cookies.clear()
        answer = submit(forgetful, challenge)
    assert answer.status_code == 403
    assert "cookie" in answer.text.lower()
    assert "gate_pass" not in answer.headers.get("set-cookie", "")


def test_static_assets_are_cached_for_long(pair: tuple[GateProcess, GateProcess]) -> None:
    with client(pair[0]) as browser:
        script = browser.get("/.gate/static/solver.js")
        missing = browser.get("/.gate/static/nope.js")
    assert script.status_code == 200
    assert "immutable" in script.headers["cache-control"]
    assert script.headers["content-type"].startswith("text/javascript")
    assert missing.status_code == 404


def test_the_challenge_page_carries_the_pages_preview_tags(pair: tuple[GateProcess, GateProcess]) -> None:
    with client(pair[0]) as browser:
        page = browser.get("/article.html").text
    assert '<meta property="og:title" content="Why small sites &amp; their writers matter">' in page
    assert '<meta name="twitter:card" content="summary_large_image">' in page
    assert "not a preview tag" not in page
    assert "in the body" not in page


def test_a_pass_earned_at_a_low_difficulty_does_not_open_a_harder_rule(pair: tuple[GateProcess, GateProcess]) -> None:
    agent = UA + " level-test"
    with httpx.Client(base_url=pair[0].url, headers={"User-Agent": agent}) as browser:
        submit(browser, read_challenge(browser.get("/page.html").text))
        assert browser.get("/page.html").status_code == 200
        harder = browser.get("/hard/x")
    assert harder.status_code == 429
    assert "gate-challenge" in harder.text


def test_an_oversized_or_overfull_answer_is_refused_cleanly(pair: tuple[GateProcess, GateProcess]) -> None:
    with client(pair[0]) as browser:
        huge = browser.post("/.gate/challenge/verify", content=b"a" * 100_000,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        overfull = browser.post("/.gate/challenge/verify", content="&".join(f"f{n}=1" for n in range(50)).encode())
    assert huge.status_code == 413
    assert overfull.status_code == 400
