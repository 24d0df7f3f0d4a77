"""The chat page as a person uses it all day, in real Chromium over a real `assistant serve`.

Opening citations (a marker brings its source forward; a PDF source opens at its page, rendered,
with the quote highlighted; a markdown source at its heading path), readable highlights in the
light and dark themes, a phone-width layout, dropping files to index them, removal that asks
first, and conversations with feedback kept on the server across a restart.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import formats_samples as samples
import pytest
from browser import ask, chromium, open_chat
from servers import QUIET, copy_seeds, serve

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
NOTES = (
    "# Harbour\n\nThe harbour is old and busy.\n\n## Lighthouse\n\nThe Velmora lighthouse keeper is Ondrea Kasprzak.\n"
)
PDF_QUESTION = "How many beehives does the Brindlemoor apiary keep?"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A server over seeds + a two-page PDF + a markdown file with headings; yields (url, index, seeds, base)."""
    base = tmp_path_factory.mktemp("citations")
    seeds = copy_seeds(base, {"harbour.md": NOTES})
    samples.pdf(seeds / "apiary.pdf", samples.APIARY_PAGES)
    with serve(base / "index", seeds, log=base / "server.log") as url:
        yield url, base / "index", seeds, base


@pytest.fixture(scope="module")
def browser(site):
    with chromium() as b:
        yield b


def new_chat(page) -> None:
    """Start a new conversation and wait until the chat is empty."""
    page.click("#new-chat")
    page.wait_for_function("() => document.querySelectorAll('#chat [data-testid=\"bot\"]').length === 0")


def in_view(page, selector: str) -> bool:
    return page.evaluate(
        """s => { const r = document.querySelector(s).getBoundingClientRect();
                  return r.top >= 0 && r.top < window.innerHeight; }""",
        selector,
    )


@pytest.fixture(scope="module")
def page(browser, site):
    page = open_chat(browser, site[0], theme="light")
    yield page
    page.close()


def test_clicking_a_marker_brings_its_source_forward(page):
    answer = ask(page, PDF_QUESTION)
    assert "417" in answer and "[1]" in answer
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")  # the sources out of sight
    page.locator('#chat [data-testid="bot"]').last.locator(".cite").first.click()
    page.wait_for_selector('#sources .source.focused[data-n="1"]')
    page.wait_for_function(
        """() => { const r = document.querySelector('#sources .source.focused').getBoundingClientRect();
                   return r.top >= 0 && r.top < window.innerHeight; }"""
    )
    assert "apiary.pdf, page 2" in page.inner_text("#sources .source.focused")


def test_a_pdf_source_opens_at_its_page_rendered_with_the_quote_highlighted(page):
    from PIL import Image

    page.locator('#sources .source[data-n="1"] .open-source').click()
    picture = page.wait_for_selector("#viewer img.page-picture")
    assert "apiary.pdf, page 2" in page.inner_text("#viewer .viewer-head")
    assert "could not be found" not in page.inner_text("#viewer")
    assert in_view(page, "#viewer .viewer")
    src = picture.get_attribute("src")
    assert src.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")
    pixels = image.getdata()
    quote = sum(1 for r, g, b in pixels if r > 240 and 222 < g < 250 and 150 < b < 195)  # pale yellow
    words = sum(1 for r, g, b in pixels if r > 225 and 150 < g < 200 and 110 < b < 170)  # orange
    assert quote > 500 and words > 50, (quote, words)  # the quote's line, and the answer words inside it
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-opened-pdf-citation.png"))
    page.click("#viewer img.page-picture")  # zoom: the page at the window's height
    assert page.locator("#viewer img.page-picture.zoomed").bounding_box()["height"] > 0.9 * 900
    page.click("#viewer img.page-picture")
    assert page.locator("#viewer img.page-picture.zoomed").count() == 0
    page.click("#viewer .viewer-close")
    assert page.locator("#viewer .viewer").count() == 0


def test_a_markdown_source_opens_in_its_text_under_its_heading_path(page):
    ask(page, "Who is the Velmora lighthouse keeper?")
    card = page.locator("#sources .source").filter(has_text="harbour.md").first
    assert "Harbour › Lighthouse" in card.inner_text()
    card.locator(".open-source").click()
    page.wait_for_selector("#viewer .viewer-text")
    assert page.inner_text("#viewer .source-section") == "Harbour › Lighthouse"
    assert "Ondrea Kasprzak" in page.inner_text("#viewer mark")
    assert "The harbour is old and busy." in page.inner_text("#viewer .viewer-text")  # the text around it


def contrast(page, selector: str) -> float:
    """WCAG contrast of an element's text colour against its own background colour."""
    return page.evaluate(
        """s => {
          const el = document.querySelector(s); const cs = getComputedStyle(el);
          const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
          const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
          const lum = ([r, g, b]) => 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
          const a = lum(rgb(cs.color)), b = lum(rgb(cs.backgroundColor));
          return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); }""",
        selector,
    )


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_highlighted_quotes_are_readable_in_both_themes(browser, site, theme):
    page = open_chat(browser, site[0], theme=theme)
    try:
        assert page.evaluate("() => document.body.classList.contains('dark')") == (theme == "dark")
        new_chat(page)
        ask(page, PDF_QUESTION)
        page.wait_for_selector("#sources mark strong.exact")
        assert contrast(page, "#sources mark") >= 4.5
        assert contrast(page, "#sources mark strong.exact") >= 4.5
        page.screenshot(path=str(ARTIFACTS / f"ui-{theme}.png"))
    finally:
        page.close()


def test_on_a_phone_the_sources_follow_the_answer(browser, site):
    page = open_chat(browser, site[0], width=390, height=844, theme="light")
    try:
        new_chat(page)
        box = page.locator("#chat").bounding_box()
        assert box["height"] < 500  # the empty chat leaves the question box on screen
        ask(page, PDF_QUESTION)
        top = {s: page.locator(s).bounding_box()["y"] for s in ("#chat", "#question", "#sources", "#settings-row")}
        assert top["#chat"] < top["#question"] < top["#sources"] < top["#settings-row"]
        assert page.locator("#conversations-col").bounding_box()["y"] > top["#sources"]
        page.screenshot(path=str(ARTIFACTS / "ui-phone.png"), full_page=True)
    finally:
        page.close()


def test_dropping_files_indexes_them_and_removing_asks_first(page, tmp_path):
    doc = samples.pdf(
        tmp_path / "orchard.pdf", [["The Quenby orchard grows 38 kinds of pear."], ["Page two."], ["Three."]]
    )
    page.get_by_role("tab", name="Documents").click()
    page.locator("#upload input[type=file]").set_input_files(str(doc))  # what a drop does: no other click
    page.wait_for_selector("#upload-status ul")
    assert "orchard.pdf: indexed" in page.inner_text("#upload-status")
    row = page.locator("#documents tr").filter(has_text="orchard.pdf")
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "3 pages" and cells[2] == "1" and "KB" in cells[3] and cells[4][:2] == "20"
    page.get_by_label("Document", exact=True).click()
    page.get_by_role("option", name="orchard.pdf").click()
    page.once("dialog", lambda d: d.dismiss())
    page.get_by_role("button", name="Remove from index").click()
    page.wait_for_timeout(1000)
    assert "orchard.pdf" in page.inner_text("#documents")  # dismissed: nothing removed
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Remove from index").click()
    page.get_by_text("Removed orchard.pdf").wait_for()
    assert "orchard.pdf" not in page.inner_text("#documents")
    page.get_by_role("tab", name="Chat").click()


def test_conversations_are_kept_across_a_restart_with_feedback_and_export(browser, tmp_path):
    base = tmp_path
    seeds = copy_seeds(base)
    samples.pdf(seeds / "apiary.pdf", samples.APIARY_PAGES)
    index = base / "index"
    with serve(index, seeds, log=base / "server1.log") as url:
        page = open_chat(browser, url, theme="light")
        ask(page, PDF_QUESTION)
        page.locator('#chat button[aria-label="Like"]').last.click()
        new_chat(page)
        ask(page, "Where are Putin and Pezeshkian meeting?")
        page.locator("#conversations").get_by_text("Where are Putin and Pezeshkian meeting?").wait_for()
        page.wait_for_function("() => document.querySelectorAll('#conversations input:checked').length === 1")
        page.locator("#conversation-tools").click()
        name = page.locator("#conv-title textarea, #conv-title input")
        name.fill("Summit notes")
        assert name.input_value() == "Summit notes"
        page.click("#rename")
        page.locator("#conversations").get_by_text("Summit notes").wait_for()
        page.close()
    with serve(index, seeds, log=base / "server2.log") as url:
        page = open_chat(browser, url, theme="light")
        listing = page.locator("#conversations")
        listing.get_by_text("Summit notes").wait_for()
        assert page.locator('#chat [data-testid="bot"]').count() == 0  # a new chat, the saved ones listed
        listing.get_by_text(PDF_QUESTION).click()
        page.wait_for_function("() => document.querySelector('#chat').innerText.includes('417')")
        assert "Ashgabat" not in page.inner_text("#chat")
        page.locator('#chat [data-testid="bot"]').last.locator(".cite").first.click()  # still opens after a restart
        page.wait_for_selector('#sources .source.focused[data-n="1"]')
        page.locator('#sources .source[data-n="1"] .open-source').click()
        page.wait_for_selector("#viewer img.page-picture")
        page.locator("#conversation-tools").click()
        page.click("#export")
        link = page.wait_for_selector("#exported a[href]")
        exported = page.request.get(link.get_attribute("href")).text()
        assert f"## {PDF_QUESTION}" in exported and "[1] apiary.pdf, page 2" in exported
        assert "> The Brindlemoor apiary keeps exactly 417 beehives" in exported
        listing.get_by_text("Summit notes").click()
        page.wait_for_function("() => document.querySelector('#chat').innerText.includes('Ashgabat')")
        page.once("dialog", lambda d: d.accept())
        page.click("#delete-chat")
        page.wait_for_function("() => !document.querySelector('#conversations').innerText.includes('Summit notes')")
        assert "417" in page.inner_text("#chat")  # the conversation left is shown
        page.close()
    env = {**os.environ, **QUIET, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "assistant", "feedback", "--json", "--index-dir", str(index)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=True,
    )  # fmt: skip
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 1
    assert records[0]["rating"] == "up" and records[0]["question"] == PDF_QUESTION
    assert records[0]["answer"]["citations"][0]["page"] == 2 and "417" in records[0]["answer"]["answer"]
