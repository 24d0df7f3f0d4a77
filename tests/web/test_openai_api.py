"""The OpenAI-compatible endpoint, through the real clients: the `openai` package and LangChain's
`ChatOpenAI`, against a running `assistant serve` over the seed article (password and API key on).

Request checks that need no model run on the app in-process (`TestClient`).
"""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from servers import copy_seeds, serve

from assistant.settings import Settings
from assistant.web import Service, build_app

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-0123456789"
USER, PASSWORD = "alice", "s3cret"
QUESTION = "Why might Russia not send S-400s?"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`assistant serve --auth` with `ASSISTANT_API_KEY`, over a copy of the seeds; yields its base URL."""
    base = tmp_path_factory.mktemp("openai")
    seeds = copy_seeds(base)
    log = base / "server.log"
    with serve(base / "index", seeds, log=log, env={"ASSISTANT_API_KEY": KEY}, auth=f"{USER}:{PASSWORD}") as url:
        yield url
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server}/v1", api_key=KEY, max_retries=0, timeout=120)


def _seed_text() -> str:
    return (ROOT / "seeds" / "putin-pezeshkian-ashgabat-s400.txt").read_text(encoding="utf-8")


def test_openai_client_plain(client):
    r = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": QUESTION}])
    content = r.choices[0].message.content
    assert r.object == "chat.completion" and r.choices[0].finish_reason == "stop" and "[1]" in content
    citations = r.model_extra["citations"]
    assert citations and r.model_extra["abstained"] is False
    for c in citations:
        assert c["text"] in _seed_text() and c["quote"] in c["text"]
        assert not c["source"].startswith("/")  # a shown name, never a server path
        assert f"[{c['n']}]" in content
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0
    assert [m.id for m in client.models.list()][:3] == ["assistant", "reader", "extractive"]


def test_openai_client_streaming_matches_plain(client):
    messages = [{"role": "user", "content": QUESTION}]
    plain = client.chat.completions.create(model="extractive", messages=messages)
    chunks = list(client.chat.completions.create(model="extractive", messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    last = [c for c in chunks if c.choices][-1]
    assert last.choices[0].finish_reason == "stop"
    assert [c["text"] for c in last.model_extra["citations"]] == [c["text"] for c in plain.model_extra["citations"]]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_follow_up_uses_earlier_turns_and_declines_are_answers(client):
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Who said Russia wouldn't want to antagonise Israel?"},
        {"role": "assistant", "content": "Stephen Hall said so."},
        {"role": "user", "content": "Who is he?"},
    ]
    r = client.chat.completions.create(model="assistant", messages=messages)
    assert r.model_extra["abstained"] is False and "Hall" in " ".join(c["text"] for c in r.model_extra["citations"])
    r = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "What is the boiling point of tungsten?"}]
    )
    assert r.model_extra["abstained"] is True and r.model_extra["citations"] == []
    assert r.choices[0].message.content and r.choices[0].finish_reason == "stop"


def test_langchain_chat_openai_invoke_and_stream(server):
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=f"{server}/v1", api_key=KEY, model="assistant", max_retries=0, timeout=120)
    reply = chat.invoke(QUESTION)
    assert "[1]" in reply.content
    streamed = "".join(part.content for part in chat.stream(QUESTION))
    assert streamed == reply.content


def test_auth_basic_bearer_and_refusals(server):
    import openai

    body = {"model": "assistant", "messages": [{"role": "user", "content": QUESTION}]}
    url = f"{server}/v1/chat/completions"
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": _basic(USER, "nope")}):
        r = httpx.post(url, json=body, headers=headers, timeout=30)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{server}/v1/models", timeout=30).status_code == 401
    r = httpx.post(url, json=body, headers={"Authorization": _basic(USER, PASSWORD)}, timeout=120)
    assert r.status_code == 200 and r.json()["citations"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="sk-wrong", max_retries=0).models.list()


@pytest.fixture
def app_client(tmp_path):
    from fastapi.testclient import TestClient

    def make(auth=None, api_key=None):
        settings = Settings.from_env(index_dir=tmp_path / "index", seeds_dir=tmp_path / "none", api_key=api_key)
        return TestClient(build_app(Service(settings), auth=auth))

    return make


def test_bad_bodies_get_openai_errors(app_client):
    client = app_client()  # no password, no key: open, like the page
    assert client.get("/v1/models").json()["data"][0]["id"] == "assistant"
    cases = [
        (b"not json", "application/json", 400),
        (b'{"messages": []}', "text/plain", 415),
        (b"[1, 2]", "application/json", 422),
        (b"{}", "application/json", 422),
        (b'{"messages": []}', "application/json", 422),
        (b'{"messages": [{"role": "wizard", "content": "hi"}]}', "application/json", 422),
        (b'{"messages": [{"role": "user", "content": 42}]}', "application/json", 422),
        (b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', "application/json", 422),
        (b'{"messages": [{"role": "assistant", "content": "hi"}]}', "application/json", 422),
        (b'{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}', "application/json", 422),
        (b'{"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4o"}', "application/json", 404),
        (b'{"messages": [{"role": "user", "content": "' + b"x" * 3000 + b'"}]}', "application/json", 400),
        (b'{"messages": [{"role": "user", "content": "' + b"x" * 300_000 + b'"}]}', "application/json", 413),
    ]
    for body, kind, status in cases:
        r = client.post("/v1/chat/completions", content=body, headers={"Content-Type": kind})
        assert r.status_code == status, body[:70]
        error = r.json()["error"]
        assert error["message"] and error["type"] and "Traceback" not in error["message"], body[:70]


def test_bearer_key_alone_protects_v1(app_client):
    client = app_client(api_key=KEY)
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": _basic("any", KEY)}).status_code == 401
    assert KEY not in repr(Settings(api_key=KEY))
