"""Preview tags taken from a page's head: og:*, twitter:* and article:*, bounded, nothing else."""

from __future__ import annotations

from gate.challenge.preview import MAX_CONTENT, MAX_TAGS, preview_tags


def test_preview_tags_come_from_the_head_only() -> None:
    html = (
        '<html><head><meta property="og:title" content="A &amp; B"><meta name="twitter:site" content="@blog">'
        '<meta name="description" content="no"><meta property="og:image"></head>'
        '<body><meta property="og:title" content="late"></body></html>'
    )
    assert preview_tags(html) == [("og:title", "A & B"), ("twitter:site", "@blog")]


def test_preview_tags_are_bounded() -> None:
    html = "<head>" + "".join(f'<meta property="og:x{i}" content="{"y" * 5000}">' for i in range(100)) + "</head>"
    tags = preview_tags(html)
    assert len(tags) == MAX_TAGS
    assert all(len(content) == MAX_CONTENT for _, content in tags)


def test_broken_html_gives_what_it_can() -> None:
    assert preview_tags('<meta property="og:title" content="x"><head><<<>>>') == [("og:title", "x")]
