"""An LLM sentence the documents do not support, shown apart in a real browser and listed by the APIs.

The server (`assistant serve --generator openai`) talks to a tiny OpenAI-compatible server started
here (stdlib `http.server`), which answers every chat completion with one supported sentence and
one with an invented number, streamed or whole.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from browser import ARGS, CHROMIUM
from servers import copy_seeds, serve

from assistant.schema import Answer, Unsupported
from assistant.web import render_answer

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Why might Russia not send S-400s to Iran?"
SUPPORTED = "Russia wants to keep Israel away from funding Ukraine."
INVENTED = "Stephen Hall said Russia would send 40 S-400 systems to Iran."
REPLY = f"{SUPPORTED} {INVENTED}"


class FakeOpenAI(BaseHTTPRequestHandler):
    """`POST /v1/chat/completions`: `REPLY`, as one completion or as server-sent chunks."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self.send_error(404)
            return
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            words = REPLY.split(" ")
            for i, word in enumerate(words):
                self._event({"content": word if i == 0 else f" {word}"}, None)
            self._event({}, "stop")
            self.wfile.write(b"data: [DONE]\n\n")
            return
        message = {"role": "assistant", "content": REPLY}
        data = {**_head("chat.completion"), "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
        payload = json.dumps({**data, "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload.encode())

    def _event(self, delta: dict, finish: str | None) -> None:
        chunk = {**_head("chat.completion.chunk"), "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.flush()

    def log_message(self, *args) -> None:
        pass


def _head(kind: str) -> dict:
    return {"id": "fake-1", "object": kind, "created": int(time.time()), "model": "fake"}


@pytest.fixture(scope="module")
def llm_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory, llm_url):
    """`assistant serve --generator openai` over the seeds, its LLM the fake above; yields its base URL."""
    base = tmp_path_factory.mktemp("ui-grounding")
    args = ("--generator", "openai", "--llm-url", llm_url, "--llm-timeout", "60")
    with serve(base / "index", copy_seeds(base), *args, log=base / "server.log") as url:
        yield url


def test_an_unsupported_sentence_renders_muted_labelled_and_escaped():
    text = "Basel is on the Rhine [1]. Its mayor is <b>Ondrea</b>."
    at = text.index("Its")
    answer = Answer(text, False, unsupported=[Unsupported(text[at:], at, len(text), 'names "Ondrea"')])
    bubble = render_answer(answer)
    assert '<span class="cite">[1]</span>' in bubble and "<b>" not in bubble
    assert (
        '<span class="unsupported" title="names &quot;Ondrea&quot;">Its mayor is &lt;b&gt;Ondrea&lt;/b&gt;.' in bubble
    )
    assert bubble.count("not found in the sources") == 1
    moved = Answer(text, False, unsupported=[Unsupported("Its mayor", 0, 9, "x")])  # not where it says
    assert "unsupported" not in render_answer(moved)


def test_api_lists_the_unsupported_sentence(server):
    r = httpx.post(f"{server}/api/ask", json={"question": QUESTION}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["generator"] == "openai" and body["warning"] is None and body["citations"]
    [u] = body["unsupported"]
    assert u["text"] == INVENTED and body["answer"][u["start"] : u["end"]] == INVENTED and "'40'" in u["reason"]


def test_gradio_client_gets_the_unsupported_sentence(server):
    from gradio_client import Client

    result = Client(server, verbose=False).predict(question=QUESTION, api_name="/ask")
    assert [u["text"] for u in result["unsupported"]] == [INVENTED]


def test_chat_shows_the_unsupported_sentence_muted_and_labelled(server):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM}: the browser test cannot run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.set_default_timeout(120_000)
        page.goto(server, wait_until="load")
        page.fill("#question textarea", QUESTION)
        page.click("#ask")
        page.wait_for_selector('#chat [data-testid="bot"] .answer-done')  # the streamed message, finished
        bots = page.locator('#chat [data-testid="bot"]')
        assert bots.count() == 1  # the streamed message was replaced, not followed by another
        flagged = bots.last.locator(".unsupported")
        assert flagged.count() == 1
        assert flagged.inner_text().startswith(INVENTED) and "not found in the sources" in flagged.inner_text()
        assert float(flagged.evaluate("e => getComputedStyle(e).opacity")) < 1
        # the supported sentence cites its passage (a marker the model left out, added by the check)
        assert f"{SUPPORTED[:-1]} [1]." in bots.last.inner_text() and SUPPORTED[:-1] not in flagged.inner_text()
        assert bots.last.locator(".cite").count() == 1 and "[1]" in page.inner_text("#sources")
        (ROOT / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / "artifacts" / "ui-unsupported-sentence.png"), full_page=True)
        browser.close()
