"""The chat page with the user's own documents, in real Chromium: example questions drawn from them,
each document's record in the Documents tab, and a question limited to one chosen document."""

from __future__ import annotations

import pytest
from browser import chat_page
from servers import copy_seeds, serve

from assistant.web.records_view import example_questions

OWN = {
    "orchards.md": "# Orchard Pruning Guide\n\nBy Marta Kowalczyk\n\n"
    "Apple trees are pruned in late winter, before the buds open. "
    "Pruning opens the crown to light, so the fruit ripens evenly and the leaves dry quickly after rain.\n",
    "vineyards.md": "# Vineyard Pruning Notes\n\nBy Oskar Lindqvist\n\n"
    "Grape vines are pruned in winter, when the sap is down. "
    "Pruning keeps two canes per vine, so the harvest is smaller but the grapes are sweeter.\n",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from assistant import Assistant

    base = tmp_path_factory.mktemp("ui-docs")
    seeds = copy_seeds(base)
    own = base / "own"
    own.mkdir()
    for name, text in OWN.items():
        (own / name).write_text(text, encoding="utf-8")
    Assistant(index_dir=base / "index", seeds_dir=seeds, progress=False).index([seeds, own])
    with serve(base / "index", seeds, log=base / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with chat_page(server) as tab:
        yield tab


def test_examples_come_from_the_users_documents(page):
    page.wait_for_function("() => document.body.innerText.includes('What is Orchard Pruning Guide about?')")
    body = page.inner_text("body")
    assert "Why might Russia not send S-400s?" not in body  # the bundled seeds' examples give way


def test_documents_tab_shows_each_record(page):
    page.get_by_role("tab", name="Documents").click()
    page.wait_for_selector("#documents .records")
    records = page.inner_text("#documents .records")
    assert "Orchard Pruning Guide" in records and "Marta Kowalczyk" in records and "Oskar Lindqvist" in records
    page.get_by_role("tab", name="Chat").click()


def test_a_question_limited_to_one_chosen_document(page):
    page.click("#scope input")
    page.get_by_role("option", name="own/vineyards.md").click()
    page.keyboard.press("Escape")
    assert "own/vineyards.md" in page.inner_text("#scope")  # the scope stays in view
    answers = page.locator('#chat [data-testid="bot"]')
    page.fill("#question textarea", "When are the plants pruned?")
    page.click("#ask")
    page.wait_for_function(
        """() => { const bots = document.querySelectorAll('#chat [data-testid="bot"]');
                  return bots.length > 0 && bots[bots.length - 1].querySelector('.answer-done'); }"""
    )
    sources = page.inner_text("#sources")
    assert "vineyards.md" in sources and "orchards.md" not in sources, (answers.last.inner_text(), sources)


def test_example_questions_fall_back_to_the_defaults_without_own_documents():
    assert example_questions([], ["default?"]) == ["default?"]


def test_api_and_openai_questions_limited_to_documents(server):
    import httpx

    body = {"question": "When are the plants pruned?", "sources": ["own/orchards.md"]}
    r = httpx.post(f"{server}/api/ask", json=body, timeout=300)
    assert r.status_code == 200, r.text
    assert {c["source"] for c in r.json()["citations"]} == {"own/orchards.md"}
    r = httpx.post(f"{server}/api/ask", json={**body, "sources": ["nowhere.md"]}, timeout=60)
    assert r.status_code == 422 and "nowhere.md" in r.json()["error"]
    chat = {"messages": [{"role": "user", "content": "Who wrote it?"}], "sources": ["vineyards.md"]}
    r = httpx.post(f"{server}/v1/chat/completions", json=chat, timeout=300)
    assert r.status_code == 200, r.text
    assert "Oskar Lindqvist" in r.json()["choices"][0]["message"]["content"]
