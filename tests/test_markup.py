"""Untrusted text in reports: Markdown escaping through nbconvert's own renderer, the report's CSP, the index."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import nbformat
import pytest

from bizra_nb.markup import md, md_code, protect_html, report_policy, script_hashes
from bizra_nb.reports import export_html, failure_cell, write_index

PAYLOADS = [
    "<script>document.title='pwned'</script>",
    "<img src=x onerror=\"document.title='pwned'\">",
    "[click me](javascript:document.title='pwned')",
    "\"><svg onload=\"document.title='pwned'\">",
    "`</code><img src=x onerror=alert(1)>`",
    "``` <b>fence</b>",
    "![i](javascript:alert(1))",
    "<a href=\"javascript:alert(1)\">a</a>",
    "line one\n\n<iframe src=javascript:alert(1)>\n# heading",
]


class Elements(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))


def rendered(markdown_outputs: list[str]) -> str:
    """The HTML nbconvert makes of these Markdown outputs (the path every report takes)."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": text, "text/plain": ""})
                    for text in markdown_outputs]
    nb.cells = [cell]
    page = export_html(nb, title="t")
    return page[page.index("<main"):]


def dangerous(page: str) -> list[tuple[str, dict]]:
    parser = Elements()
    parser.feed(page)
    bad = []
    for tag, attrs in parser.tags:
        if tag in ("script", "img", "svg", "iframe", "b") or any(a.startswith("on") for a in attrs):
            bad.append((tag, attrs))
        if tag == "a" and not (attrs.get("href") or "").startswith("#"):  # nbconvert's own heading anchors only
            bad.append((tag, attrs))
    return bad


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escaped_text_renders_as_text_only(payload):
    page = rendered([f"Title: {md(payload)}", f"Code: {md_code(payload)}", f"### {md(payload)}"])
    assert dangerous(page) == []
    # what is shown is the text itself (newlines folded to spaces)
    shown = re.sub(r"\s+", " ", payload).strip()
    texts = [re.sub(r"<[^>]+>", "", m) for m in re.findall(r"<p>(.*?)</p>", page, re.S)]
    import html

    assert any(html.unescape(t).endswith(shown) for t in texts), (shown, texts)


def test_unescaped_payload_would_be_markup():
    """The check above can fail: the same payloads raw do become tags and links."""
    assert dangerous(rendered(PAYLOADS))


def test_code_span_fence_outgrows_the_backticks_inside():
    assert md_code("a`b``c").startswith("``` ") and md_code("plain") == "` plain `"
    assert md_code("") == '`""`'


def test_failure_banner_escapes_every_value():
    nb = nbformat.v4.new_notebook()
    nb.cells = [failure_cell(notebook="nb", error={"type": PAYLOADS[1], "message": PAYLOADS[0] + PAYLOADS[2],
                                                    "cell": 3, "run_id": PAYLOADS[3]},
                             parameters={"source": PAYLOADS[1], PAYLOADS[3]: PAYLOADS[2]})]
    page = export_html(nb, title="t")
    body = page[page.index("<main"):]
    assert dangerous(body) == []
    assert body.count('class="bizra-failure"') == 1
    assert "&lt;img src=x onerror=" in body


def test_index_escapes_headlines_and_errors(tmp_path):
    folder = tmp_path / "incident" / "2026-10-01-abc"
    folder.mkdir(parents=True)
    (folder / "report.html").write_text("x")
    runs = [{"created_at": 0, "kind": PAYLOADS[1], "status": "failed", "error": PAYLOADS[0], "folder": str(folder),
             "summary": {"headline": PAYLOADS[3]}}]
    page = write_index(runs, tmp_path).read_text()
    parser = Elements()
    parser.feed(page)
    assert not [t for t, a in parser.tags if t in ("script", "img", "svg") or any(k.startswith("on") for k in a)]
    assert [a["href"] for t, a in parser.tags if t == "a"] == ["incident/2026-10-01-abc/report.html"]


def test_protect_html_allows_exactly_the_given_scripts():
    figure = '<script>var a = 1;</script><script type="text/javascript">var b = 2;</script>'
    page = ('<html><head><meta charset="utf-8"><title>t</title></head><body>' + figure +
            '<script type="application/json">{}</script><script src="x.js"></script>'
            "<script>document.title='pwned'</script></body></html>")
    hashes = script_hashes(figure)
    assert len(hashes) == 2 and all(re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", h) for h in hashes)
    assert len(script_hashes(page)) == 3  # data blocks and external scripts are no inline code
    protected = protect_html(page, hashes)
    assert protected.startswith('<html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy"')
    policy = report_policy(protected[:4096])
    assert policy.split("script-src ")[1].split(";")[0] == " ".join(hashes)
    assert "sandbox allow-scripts" in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'none'" in protect_html(page, [])


def test_an_export_allows_only_the_figures_scripts():
    """Scripts in Markdown or other HTML outputs (escaping gone wrong) get no hash; the figures' do."""
    import plotly.graph_objects as go

    from bizra_nb.notebook import OfflineRenderer
    from bizra_nb.reports import figure_scripts

    OfflineRenderer.sent_plotlyjs = False
    figure = OfflineRenderer().to_mimebundle(go.Figure(go.Bar(x=["a"], y=[1])).to_dict())
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data=figure),
        nbformat.v4.new_output("display_data", data={"text/markdown": "<script>window.pwned = 1</script>"}),
        nbformat.v4.new_output("display_data", data={"text/html": "<script>window.pwned = 2</script>"}),
    ]
    nb.cells = [cell]
    page = export_html(nb, title="t")
    allowed = figure_scripts(nb)
    assert allowed and set(allowed) < set(script_hashes(page))
    assert report_policy(page[:4096]).split("script-src ")[1].split(";")[0] == " ".join(dict.fromkeys(allowed))


def test_report_policy_takes_only_hashes_from_a_file():
    assert "script-src 'none'" in report_policy("<html><head></head><body>no policy</body>")
    forged = ('<html><head><meta http-equiv="Content-Security-Policy" content="script-src \'unsafe-inline\' '
              'https://evil.example \'sha256-' + "A" * 43 + '=\'">')
    policy = report_policy(forged)
    script_src = policy.split("script-src ")[1].split(";")[0]
    assert script_src == f"'sha256-{'A' * 43}='" and "evil.example" not in policy
