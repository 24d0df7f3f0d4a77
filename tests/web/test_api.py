"""The JSON API's input checks and access control, and `serve`'s refusal to go public unprotected.

These need no model: every request here is settled before a question reaches the pipeline.
Answers over HTTP against a running server are tested in test_ui.py (one server per module).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.settings import Settings
from assistant.web import Service, basic_auth_ok, build_app, parse_auth, parse_history

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(tmp_path):
    from fastapi.testclient import TestClient

    service = Service(Settings.from_env(index_dir=tmp_path / "index", seeds_dir=tmp_path / "none"))
    return TestClient(build_app(service, auth=("alice", "s3cret:with:colons")))


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_api_requires_credentials_when_auth_is_on(client):
    r = client.post("/api/ask", json={"question": "Why?"})
    assert r.status_code == 401 and r.json() == {"error": "Authentication required."}
    assert r.headers["www-authenticate"].startswith("Basic")
    assert client.post("/api/ask", json={"question": "Why?"}, headers=_basic("alice", "wrong")).status_code == 401
    assert client.post("/api/ask", headers={"Authorization": "Basic !!notbase64"}).status_code == 401
    assert client.get("/api/health").json() == {"status": "ok"}  # liveness stays open, says nothing


def test_api_rejects_bad_input_with_an_error_field(client):
    auth = _basic("alice", "s3cret:with:colons")
    cases = [
        (b"not json", 400),
        (b'{"history": []}', 422),
        (b'{"question": 42}', 422),
        (b'{"question": "Who?", "history": "nope"}', 422),
        (b'{"question": "Who?", "history": [{"role": "user"}]}', 422),
        (b'{"question": "Who?", "history": [["only one"]]}', 422),
        (b'{"question": "Who?", "generator": "nonexistent"}', 422),
        (b'{"question": "   "}', 400),
        (b'{"question": "' + b"x" * 3000 + b'"}', 400),
    ]
    for body, status in cases:
        r = client.post("/api/ask", content=body, headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == status, body[:60]
        assert isinstance(r.json()["error"], str) and r.json()["error"]


def test_history_formats():
    pairs = [["Who said it?", "Stephen Hall. [1]"]]
    messages = [{"role": "user", "content": "Who said it?"}, {"role": "assistant", "content": "Hall."}]
    assert parse_history(pairs) == pairs
    assert parse_history(messages) == messages
    assert parse_history(None) == []
    assert len(parse_history([["q", "a"]] * 100)) == 40  # only recent turns matter for a follow-up


def test_auth_parsing_and_basic_check():
    assert parse_auth("u:p:q") == ("u", "p:q")
    assert parse_auth(None) is None
    for bad in ("nocolon", ":p", "u:"):
        with pytest.raises(ValueError):
            parse_auth(bad)
    header = _basic("u", "p")["Authorization"]
    assert basic_auth_ok(header, ("u", "p"))
    assert not basic_auth_ok(header, ("u", "x"))
    assert not basic_auth_ok(header.replace("Basic", "Bearer"), ("u", "p"))


def _serve(*args: str, auth: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ASSISTANT_AUTH"}
    if auth:
        env["ASSISTANT_AUTH"] = auth
    return subprocess.run(
        [sys.executable, "-m", "assistant", "serve", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_serve_refuses_a_public_address_without_auth():
    proc = _serve("--host", "0.0.0.0", "--port", "1")
    assert proc.returncode == 2
    assert "Refusing to serve on 0.0.0.0" in proc.stderr and "--auth" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_rejects_malformed_auth_without_echoing_it():
    proc = _serve("--host", "0.0.0.0", "--port", "1", auth="justapassword")
    assert proc.returncode == 2 and "USER:PASS" in proc.stderr
    assert "justapassword" not in proc.stderr + proc.stdout
