"""The chat page in a real browser (Debian chromium via playwright), plus its pure helpers.

One server per module: a subprocess `assistant serve` on a free port over a private copy of the
seeds and a hostile document, built once. Browser tests share one page in order, like a user.
"""

from __future__ import annotations

import html
from pathlib import Path

import httpx
import pytest
from browser import ask as ask_in_browser
from browser import chat_page
from servers import copy_seeds, serve

from assistant.schema import Answer, Citation
from assistant.web import UploadError, highlight, render_answer, render_sources, render_text, safe_name, save_upload

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=2">'
HOSTILE = (
    "Harbour notes.\n\n"
    f"The Velmora lighthouse keeper is Ondrea Kasprzak {SCRIPT} and she lights the lamp at dusk.\n\n"
    f"The Velmora lighthouse was painted green in 1911 {IMG} after a storm.\n"
)
UPLOADED = (
    "Notes from the Brindlemoor apiary.\n\n"
    "The Brindlemoor apiary keeps exactly 417 beehives on the northern slope of Mount Tarrow. "
    "Its honey is sold every Thursday at the Quenby market.\n"
)


# -- pure helpers: no server needed ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\boot.ini.md", "boot.ini.md"),
        ("/abs/path/report.pdf", "report.pdf"),
        ("..", "upload"),
        ("a\x00b\x1fc.txt", "abc.txt"),
        ('<img src=x onerror="alert(1)">.txt', "img src_x onerror_alert(1).txt"),
        (".hidden.md", "hidden.md"),
    ],
)
def test_safe_name_strips_directories_control_and_markup(given, expected):
    assert safe_name(given) == expected


def test_save_upload_stays_in_folder_and_refuses_bad_files(tmp_path):
    src = tmp_path / "in.bin"
    src.write_text("hello")
    folder = tmp_path / "uploads"
    saved = save_upload(src, "../../escape.txt", folder, max_mb=1)
    assert saved == folder / "escape.txt" and saved.read_text() == "hello"
    assert not (tmp_path / "escape.txt").exists()
    with pytest.raises(UploadError, match="unsupported file type"):
        save_upload(src, "tool.exe", folder, max_mb=1)
    src.write_bytes(b"x" * 3000)
    with pytest.raises(UploadError, match="too large"):
        save_upload(src, "big.txt", folder, max_mb=0.001)
    assert sorted(p.name for p in folder.iterdir()) == ["escape.txt"]


def test_rendering_escapes_document_text_and_marks_the_quote():
    text = f"Before. Keeper is Ondrea {SCRIPT}. After."
    quote = f"Keeper is Ondrea {SCRIPT}."
    c = Citation(1, "/docs/a<b>.txt", text, quote, 0, len(text), None, 0.87)
    answer = Answer(f"{quote} [1]", False, [c], warning="The language model failed (timeout)")
    bubble, panel = render_answer(answer), render_sources(answer)
    for out in (bubble, panel):
        assert "<script>" not in out and html.escape(SCRIPT) in out
    assert '<span class="cite">[1]</span>' in bubble and "language model failed" in bubble
    assert f"<mark>{html.escape(quote)}</mark>" in highlight(text, quote)
    at = text.index("Ondrea")
    marked = highlight(text, quote, (at, at + len("Ondrea")))
    assert '<mark>Keeper is <strong class="exact">Ondrea</strong>' in marked
    assert highlight(text, quote, (0, 6)) == highlight(text, quote)  # outside the quote: not marked
    short = Answer(f"Ondrea — {quote} [1]", False, [c], short="Ondrea")
    assert render_answer(short).startswith('<div class="answer-done"><strong class="short-answer">Ondrea</strong> — ')
    assert "a&lt;b&gt;.txt" in panel and "0.87" in panel
    assert "Not found in the documents" in render_answer(Answer("I could not find this.", True))
    assert render_text("a\n<b>") == "a<br>&lt;b&gt;"


# -- the server and the browser -------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`assistant serve` over seeds + a hostile document, in a temp index; yields its base URL."""
    base = tmp_path_factory.mktemp("ui")
    seeds = copy_seeds(base, {"harbour-notes.txt": HOSTILE})
    with serve(base / "index", seeds, log=base / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with chat_page(server) as tab:
        yield tab


def ask(page, question: str) -> tuple[str, str]:
    """Type a question, wait for the finished answer; returns (latest answer text, sources text)."""
    return ask_in_browser(page, question), page.inner_text("#sources")  # the sources come in the same update


def test_cited_answer_shows_sources_with_highlighted_quote(page):
    answer, sources = ask(page, "Why might Russia not send S-400s?")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ui-cited-answer.png"), full_page=True)
    assert "[1]" in answer and "Not found" not in answer
    assert "antagonise Israel" in sources
    assert "putin-pezeshkian-ashgabat-s400.txt" in sources and "relevance" in sources
    assert page.locator("#sources mark").count() >= 1
    page.locator("#sources details summary").first.click()
    assert page.locator("#sources details .context").first.is_visible()


def test_short_answer_in_bold_and_its_words_marked_in_the_source(page):
    """One of the page's own example questions: the reader's exact words lead in bold, and the sources
    panel marks them inside the highlighted sentence."""
    answer, sources = ask(page, "Where are Putin and Pezeshkian meeting?")
    assert "Ashgabat" in sources
    bold = page.locator('#chat [data-testid="bot"]').last.locator("strong.short-answer")
    assert bold.count() == 1 and "Ashgabat" in bold.inner_text()
    assert answer.startswith(bold.inner_text())
    exact = page.locator("#sources mark strong.exact")
    assert exact.count() == 1 and exact.inner_text() == bold.inner_text()
    page.screenshot(path=str(ARTIFACTS / "ui-short-answer.png"), full_page=True)


def test_follow_up_uses_the_earlier_turn(page):
    ask(page, "Who said Russia wouldn't want to antagonise Israel?")
    answer, sources = ask(page, "Who is he?")
    assert "Not found" not in answer
    assert "Stephen Hall" in answer + sources
    assert page.locator('#chat [data-testid="user"]').count() >= 2


def test_declined_question_is_shown_as_such(page):
    answer, sources = ask(page, "What is the boiling point of liquid nitrogen on Neptune's moons?")
    assert "Not found in the documents" in answer
    assert "Not found in the documents" in sources


def test_clear_conversation(page):
    page.click("#clear")
    page.wait_for_function("() => document.querySelectorAll('#chat [data-testid=\"bot\"]').length === 0")
    assert "Ask a question" in page.inner_text("#sources")


def test_document_text_is_never_markup(page):
    page.evaluate("() => { delete window.__xss; }")
    answer, sources = ask(page, "Who is the Velmora lighthouse keeper?")
    assert "Ondrea Kasprzak" in answer
    assert SCRIPT in answer + sources  # shown as text ...
    assert page.locator("#chat script, #sources script, #chat img[src='x'], #sources img[src='x']").count() == 0
    _, sources = ask(page, "When was the Velmora lighthouse painted green?")
    assert IMG in sources
    page.wait_for_timeout(300)  # an onerror handler would have fired by now
    assert page.evaluate("() => window.__xss") is None  # ... and never runs


def test_upload_then_answer_from_it(page, tmp_path):
    doc = tmp_path / "brindlemoor apiary.txt"
    doc.write_text(UPLOADED, encoding="utf-8")
    page.get_by_role("tab", name="Documents").click()
    page.locator("#upload input[type=file]").set_input_files(str(doc))  # dropping the file is enough
    page.wait_for_selector("#upload-status ul")
    assert "indexed" in page.inner_text("#upload-status")
    documents = page.inner_text("#documents")
    assert "brindlemoor apiary.txt" in documents and "harbour-notes.txt" in documents
    page.get_by_role("tab", name="Chat").click()
    answer, sources = ask(page, "How many beehives does the Brindlemoor apiary keep?")
    assert "417" in answer and "[1]" in answer
    assert "brindlemoor apiary.txt" in sources


def test_remove_a_document(page):
    page.get_by_role("tab", name="Documents").click()
    page.get_by_label("Document", exact=True).click()
    page.get_by_role("option", name="brindlemoor apiary.txt").click()
    page.once("dialog", lambda d: d.accept())  # removing asks first
    page.get_by_role("button", name="Remove from index").click()
    page.get_by_text("Removed brindlemoor apiary.txt").wait_for()
    assert "brindlemoor" not in page.inner_text("#documents")
    page.get_by_role("tab", name="Chat").click()
    answer, _ = ask(page, "How many beehives does the Brindlemoor apiary keep?")
    assert "417" not in answer


def test_unsupported_upload_is_refused_with_a_reason(page, tmp_path):
    bad = tmp_path / "notes.xyz"  # .rtf is supported now
    bad.write_text("hello")
    page.get_by_role("tab", name="Documents").click()
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    page.get_by_text("Invalid file type: notes.xyz").wait_for()  # the server refuses it too (test above)
    assert "notes.xyz" not in page.inner_text("#documents")
    page.get_by_role("tab", name="Chat").click()


def test_api_ask_over_http(server):
    r = httpx.post(f"{server}/api/ask", json={"question": "Why might Russia not send S-400s?"}, timeout=60)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"answer", "short", "abstained", "citations", "generator", "warning", "unsupported"}
    assert body["abstained"] is False and body["generator"] == "reader" and "[1]" in body["answer"]
    c = body["citations"][0]
    fields = {"n", "source", "text", "quote", "start", "end", "page", "score", "answer_start", "answer_end", "ocr"}
    assert set(c) == fields | {"section"}
    assert c["quote"] in c["text"] and 0 <= c["score"] <= 1
    history = [
        {"role": "user", "content": "Who said Russia wouldn't want to antagonise Israel?"},
        {"role": "assistant", "content": "Stephen Hall said so."},
    ]
    r = httpx.post(f"{server}/api/ask", json={"question": "Who is he?", "history": history}, timeout=60)
    assert r.status_code == 200 and not r.json()["abstained"]
    assert httpx.post(f"{server}/api/ask", json={"question": " "}, timeout=30).status_code == 400
    assert httpx.post(f"{server}/api/ask", json={"history": []}, timeout=30).status_code == 422
    assert httpx.get(f"{server}/api/health", timeout=10).json() == {"status": "ok"}


def test_gradio_client(server):
    from gradio_client import Client

    client = Client(server, verbose=False)
    result = client.predict(question="Why might Russia not send S-400s?", api_name="/ask")
    assert result["citations"] and not result["abstained"]
    assert result["citations"][0]["quote"] in result["citations"][0]["text"]
    with pytest.raises(Exception, match="the text was empty"):
        client.predict(question="  ", api_name="/ask")
