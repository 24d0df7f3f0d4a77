"""Attacks on the running server, replayed over raw HTTP (issues #15, #26), and the helpers that stop them.

One password-protected `assistant serve` per module, over a private copy of the seeds plus a
document with math in it. It starts on an index whose `uploads/` holds what a killed upload
leaves behind. Requests are sent as an attacker would send them: Gradio's queue protocol by
hand with httpx, not through a client library that would refuse to send them.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from browser import ARGS, CHROMIUM
from servers import copy_seeds, serve

from assistant.errors import StoreError, describe, redact_url
from assistant.generation.llm import OpenAIGenerator
from assistant.web import OneLineTracebacks, SourceNames, public_error
from assistant.web.guard import BodyLimits, LoginThrottle, OriginPolicy, escape_controls, parse_origins
from assistant.web.uploads import UploadError, UploadGuard, check_upload_source, save_upload

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "alice", "correct-horse"
SECRET = "The launch code of the Zephyr vault is 7741-ALPHA, kept by Marek Oslund.\n"
SECRET_Q = "What is the launch code of the Zephyr vault?"
MATH = "The Velmora tide rule is written $$h = 2t + 5$$ in the harbour master's ledger.\n"
ORPHAN = "The Quillfeather observatory on Mount Arden houses exactly 88 brass telescopes.\n"
LLM_URL = "http://mallory:hunter2@127.0.0.1:9/v1?token=tok3n-SECRET&team=blue"
LEAKS = ("mallory", "hunter2", "tok3n", "blue")
S400_Q = "Why might Russia not send S-400s?"
FRIEND, EVIL = "https://app.example.com", "https://evil.example"


# -- pure helpers: no server needed ---------------------------------------------------------------
def test_only_files_the_upload_route_wrote_are_accepted(tmp_path):
    folder = tmp_path / "gradio"
    (folder / "abc").mkdir(parents=True)
    good = folder / "abc" / "notes.txt"
    good.write_text("fine")
    outside = tmp_path / "secret.md"
    outside.write_text(SECRET)
    (folder / "abc" / "link.md").symlink_to(outside)
    (folder / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    foreign = folder / "other-app" / "cached.txt"
    foreign.parent.mkdir()
    foreign.write_text("another app's file")
    received = {str(good)}

    assert check_upload_source(str(good), folder, received) == good.resolve()
    assert check_upload_source(str(foreign), folder) == foreign.resolve()  # in the folder: the HTTP guard's test
    refused = [
        str(outside),  # a server path: the reported attack
        str(folder / "abc" / ".." / ".." / "secret.md"),
        str(folder / "abc" / "link.md"),  # a link inside the folder to a file outside
        str(folder / "dirlink" / "secret.md"),
        str(foreign),  # in the folder, but not written by this server's upload route
        str(folder),
        str(folder / "abc" / "missing.txt"),
        "http://127.0.0.1:9/notes.txt",
        "file:///etc/passwd",
    ]
    for path in refused:
        with pytest.raises(UploadError, match="refused: not a file uploaded to this server"):
            check_upload_source(path, folder, received)


def test_the_http_guard_refuses_before_gradio_sees_the_event(tmp_path):
    from starlette.testclient import TestClient

    folder = tmp_path / "gradio"
    (folder / "abc").mkdir(parents=True)
    (folder / "abc" / "notes.txt").write_text("fine")
    seen = []

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    client = TestClient(UploadGuard(app, folder))

    def event(path: str) -> dict:
        return {"fn_index": 5, "data": [[{"path": path, "meta": {"_type": "gradio.FileData"}}]]}

    r = client.post("/gradio_api/queue/join", json=event(str(tmp_path / "secret.md")))
    assert r.status_code == 403 and "not a file uploaded" in r.json()["error"] and seen == []
    assert client.post("/gradio_api/run/upload", json=event("https://example.com/a.md")).status_code == 403
    deep = b"[" * 100_000 + b"]" * 100_000
    assert client.post("/gradio_api/queue/join", content=deep).status_code == 400 and seen == []
    ok = json.dumps(event(str(folder / "abc" / "notes.txt"))).encode()
    assert client.post("/gradio_api/queue/join", content=ok).text == "ok" and seen == [ok]  # replayed whole
    assert client.post("/api/ask", json=event("/etc/passwd")).text == "ok"  # not Gradio's: not its business


def test_colliding_upload_names_keep_both(tmp_path):
    first, second = tmp_path / "a" / "notes.txt", tmp_path / "b" / "notes.txt"
    for path, text in ((first, "First notes."), (second, "Second notes.")):
        path.parent.mkdir()
        path.write_text(text)
    folder = tmp_path / "uploads"
    assert save_upload(first, "notes.txt", folder, max_mb=1) == folder / "notes.txt"
    assert save_upload(second, "notes.txt", folder, max_mb=1) == folder / "notes (2).txt"
    assert save_upload(first, "notes.txt", folder, max_mb=1) == folder / "notes.txt"  # same content: one copy
    assert save_upload(second, "../notes.txt", folder, max_mb=1) == folder / "notes (2).txt"
    assert sorted(p.name for p in folder.iterdir()) == ["notes (2).txt", "notes.txt"]
    assert (folder / "notes.txt").read_text() == "First notes."


def test_sources_are_shown_without_server_paths():
    uploads = Path("/srv/app/index/uploads")
    sources = [
        "/srv/app/seeds/putin.txt",
        "/home/ann/papers/2019/a.pdf",
        "/home/ann/papers/2020/a.pdf",
        "/srv/app/index/uploads/notes.txt",
        "/data/notes.txt",
        "/top.txt",
    ]
    names = SourceNames(sources, uploads)
    shown = {s: names.show(s) for s in sources}
    assert shown == {
        "/srv/app/seeds/putin.txt": "seeds/putin.txt",
        "/home/ann/papers/2019/a.pdf": "2019/a.pdf",
        "/home/ann/papers/2020/a.pdf": "2020/a.pdf",
        "/srv/app/index/uploads/notes.txt": "notes.txt",
        "/data/notes.txt": "data/notes.txt",
        "/top.txt": "top.txt",
    }
    assert all(names.source(v) == s for s, v in shown.items())
    clash = SourceNames(["/a/x/docs/r.txt", "/b/x/docs/r.txt"], uploads)
    assert {clash.show("/a/x/docs/r.txt"), clash.show("/b/x/docs/r.txt")} == {"a/x/docs/r.txt", "b/x/docs/r.txt"}
    assert names.source("/srv/app/seeds/putin.txt") is None  # clients name documents by shown name only
    assert names.is_upload("/srv/app/index/uploads/notes.txt") and not names.is_upload("/data/notes.txt")


def test_errors_for_clients_name_no_server_paths():
    line = public_error(StoreError("Cannot open the index at /srv/app/index: disk I/O error"))
    assert line == "Cannot open the index at …/index: disk I/O error"
    denied = OSError(13, "Permission denied", "/srv/app/index/uploads/a.txt")
    assert public_error(denied) == "Permission denied: …/a.txt"
    assert (
        public_error(StoreError(f"Cannot reach {LLM_URL}")) == "Cannot reach http://127.0.0.1:9/v1?token=***&team=***"
    )


def test_urls_are_redacted_wherever_an_endpoint_is_named():
    assert redact_url(LLM_URL) == "http://127.0.0.1:9/v1?token=***&team=***"
    assert redact_url("https://[::1]:8443/v1?key") == "https://[::1]:8443/v1?***"
    assert redact_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"
    generator = OpenAIGenerator(url=LLM_URL)
    assert generator.endpoint == "http://127.0.0.1:9/v1?token=***&team=***"
    assert not any(leak in repr(generator) for leak in LEAKS)
    line = describe(StoreError(f"Cannot reach the Chroma server at {LLM_URL}: refused"))
    assert "127.0.0.1:9" in line and not any(leak in line for leak in LEAKS)
    # A third party's error text may hold anything: it is never shown, only its kind.
    assert describe(ValueError(f"Cannot reach {LLM_URL}")) == "An unexpected error occurred (ValueError)."


def test_stack_traces_shrink_to_one_line():
    import io
    import traceback

    out = io.StringIO()
    log = OneLineTracebacks(out)
    try:
        try:
            raise KeyError("inner")
        except KeyError:
            raise ValueError("bad event data") from None
    except ValueError:
        traceback.print_exc(file=log)
    print("next line", file=log)
    assert out.getvalue() == "error: ValueError: bad event data\nnext line\n"


def test_lone_surrogates_are_cleaned_from_questions_and_history(seed_assistant):
    from assistant.pipeline import QuestionError

    with pytest.raises(QuestionError, match="the text was empty"):
        seed_assistant.answer("\ud800")
    history = [("Who said Russia wouldn't want to antagonise Israel?\udfff", "Stephen Hall.\ud800")]
    answer = seed_assistant.answer("Who is he?\ud800", history)
    assert answer.citations and "Hall" in " ".join(c.text for c in answer.citations)
    json.dumps(answer.to_dict(), ensure_ascii=False).encode("utf-8")  # encodable: no surrogate made it through


def test_wrong_passwords_cost_more_each_time_per_client():
    now = [0.0]
    throttle = LoginThrottle(free=2, first_delay=1.0, max_delay=4.0, forget_after=100.0, clock=lambda: now[0])
    throttle.failed("a")
    throttle.failed("a")
    assert throttle.wait("a") == 0  # the free tries
    delays = []
    for _ in range(4):
        throttle.failed("a")
        delays.append(throttle.wait("a"))
    assert delays == [1.0, 2.0, 4.0, 4.0] and throttle.wait("b") == 0
    now[0] += 4.0
    assert throttle.wait("a") == 0
    throttle.succeeded("a")
    throttle.failed("a")
    assert throttle.wait("a") == 0  # a success starts the count over
    now[0] += 1000
    throttle.failed("a")
    throttle.failed("a")
    assert throttle.wait("a") == 0  # and so does a long quiet spell


def test_origins_and_log_lines():
    policy = OriginPolicy({"https://App.example.com/"})
    assert policy.permits("http://assistant.example.com:7860", "assistant.example.com:7860")
    assert policy.permits("https://app.example.com", "127.0.0.1:7860")
    for origin in ("https://evil.example", "null", "http://assistant.example.com:7861", "file://", ""):
        assert not policy.permits(origin, "assistant.example.com:7860"), origin
    assert parse_origins("https://a.example, https://b.example  ") == {"https://a.example", "https://b.example"}
    assert escape_controls("/x\nINFO: forged\r\x1b[31m\u2028") == "/x\\nINFO: forged\\r\\x1b[31m\\u2028"
    limits = BodyLimits(upload=5)
    assert limits.for_request("POST", "/gradio_api/upload/") == 5 and limits.for_request("GET", "/") == 0
    assert limits.for_request("POST", "/nowhere") == limits.other


# -- the server -----------------------------------------------------------------------------------
@dataclass
class Server:
    url: str
    base: Path
    log: Path
    gradio_tmp: Path
    uploads: Path
    secret: Path


def _orphaned_uploads(uploads: Path) -> None:
    """What a kill mid-upload leaves: a half-written copy, and complete files that were never indexed."""
    uploads.mkdir(parents=True)
    (uploads / ".upload-k1ll3d.txt").write_text(ORPHAN[:30])
    (uploads / "observatory notes.txt").write_text(ORPHAN)
    (uploads / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <</Type /Cat")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("security")
    seeds = copy_seeds(base, {"tide-notes.txt": MATH})
    secret = base / "host" / "secret.md"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    _orphaned_uploads(base / "index" / "uploads")
    gradio_tmp = base / "gradio-tmp"
    gradio_tmp.mkdir()
    env = {"ASSISTANT_LLM_URL": LLM_URL, "ASSISTANT_LLM_TIMEOUT": "5", "GRADIO_TEMP_DIR": str(gradio_tmp),
           "ASSISTANT_ALLOWED_ORIGINS": FRIEND, "ASSISTANT_MAX_UPLOAD_MB": "2"}  # fmt: skip
    log = base / "server.log"
    unset = ("ASSISTANT_AUTH", "ASSISTANT_DEBUG", "ASSISTANT_GENERATOR")
    with serve(base / "index", seeds, log=log, env=env, auth=f"{USER}:{PASSWORD}", unset=unset, timeout=240) as url:
        yield Server(url, base, log, gradio_tmp, base / "index" / "uploads", secret)


class Gradio:
    """Gradio's HTTP protocol by hand: log in, upload, join the queue, read the event stream."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url, timeout=180)
        r = self.http.post("/login", data={"username": USER, "password": PASSWORD})
        assert r.status_code == 200, r.text
        config = self.http.get("/config").json()
        self.fns = {d["api_name"]: d["id"] for d in config["dependencies"] if d.get("api_name")}

    def join(self, api_name: str, data: list, session: str | None = None) -> httpx.Response:
        body = {"fn_index": self.fns[api_name], "session_hash": session or uuid.uuid4().hex, "data": data}
        # ensure_ascii: a lone surrogate travels as the JSON escape "\ud800", as a hostile client sends it
        return self.http.post("/gradio_api/queue/join", content=json.dumps(body),
                              headers={"Content-Type": "application/json"})  # fmt: skip

    def run(self, api_name: str, data: list, session: str | None = None) -> tuple[bool, object, str]:
        """(success, output data or error message, the raw event stream) of one event."""
        session = session or uuid.uuid4().hex
        joined = self.join(api_name, data, session)
        assert joined.status_code == 200, joined.text
        event_id, stream = joined.json()["event_id"], []
        with self.http.stream("GET", f"/gradio_api/queue/data?session_hash={session}") as r:
            for line in r.iter_lines():
                stream.append(line)
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                    output = message.get("output") or {}
                    ok = bool(message.get("success"))
                    return ok, output.get("data") if ok else output.get("error"), "\n".join(stream)
        raise AssertionError(f"the event stream ended without completing:\n{stream}")

    def upload(self, name: str, data: bytes) -> str:
        r = self.http.post("/gradio_api/upload", files=[("files", (name, data, "application/octet-stream"))])
        assert r.status_code == 200, r.text
        return r.json()[0]

    def upload_event(self, *paths: str) -> str:
        """Run the upload button with these paths; returns the upload status shown on the page."""
        files = [{"path": p, "orig_name": Path(p).name, "meta": {"_type": "gradio.FileData"}} for p in paths]
        ok, output, _ = self.run("upload", [files])
        assert ok, output
        return output[-2]  # the status, before the emptied file box


@pytest.fixture(scope="module")
def gradio(server) -> Gradio:
    return Gradio(server.url)


def ask(server: Server, question: str, **extra) -> httpx.Response:
    return httpx.post(f"{server.url}/api/ask", json={"question": question, **extra}, auth=(USER, PASSWORD),
                      timeout=120)  # fmt: skip


def _everything_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def test_orphans_in_uploads_are_settled_on_start(server):
    log = server.log.read_text()
    assert "deleted 1 unfinished upload(s)" in log and "indexed 1 upload(s) that were missing" in log, log
    assert "deleted unusable broken.pdf (corrupt or unreadable PDF" in log, log
    assert sorted(p.name for p in server.uploads.iterdir()) == ["observatory notes.txt"]
    body = ask(server, "How many brass telescopes does the Quillfeather observatory house?").json()
    assert "88" in body["answer"] and body["citations"][0]["source"] == "observatory notes.txt"


def test_a_server_path_in_the_upload_event_is_refused(server, gradio):
    attack = [[{"path": str(server.secret), "orig_name": "a.md", "meta": {"_type": "gradio.FileData"}}]]
    r = gradio.join("upload", attack, "x1")  # the request from the report, verbatim
    assert r.status_code == 403 and r.json() == {"error": "secret.md: refused: not a file uploaded to this server."}
    link = server.gradio_tmp / "evil" / "a.md"
    link.parent.mkdir()
    link.symlink_to(server.secret)
    for path in (str(link), "http://127.0.0.1:9/a.md", f"{server.gradio_tmp}/../host/secret.md"):
        r = gradio.join("upload", [[{"path": path, "meta": {"_type": "gradio.FileData"}}]])
        assert r.status_code == 403 and "refused" in r.json()["error"], path
    # a file that sits in Gradio's folder but was not uploaded here (another app's cache) reaches the handler
    foreign = server.gradio_tmp / "other-app" / "cached.md"
    foreign.parent.mkdir()
    shutil.copy(server.secret, foreign)
    status = gradio.upload_event(str(foreign))
    assert "cached.md: refused: not a file uploaded to this server." in status
    assert "secret.md" not in status and "cached.md" not in gradio.run("documents", [])[1][0]
    assert b"Zephyr" not in _everything_under(server.uploads)
    assert _everything_under(server.gradio_tmp).count(b"Zephyr") == 1  # only the planted copy: nothing was copied
    body = ask(server, SECRET_Q).json()
    assert "7741" not in json.dumps(body)


def test_a_real_upload_works_and_same_names_do_not_collide(server, gradio):
    first = gradio.upload("apiary.txt", b"The Brindlemoor apiary keeps exactly 417 beehives on Mount Tarrow.\n")
    assert gradio.upload_event(first).startswith("<ul><li>\u2714 apiary.txt: indexed (1 passages)")
    other = gradio.upload("apiary.txt", b"The Brindlemoor apiary sells its honey every Thursday at Quenby.\n")
    status = gradio.upload_event(other)
    assert "apiary (2).txt: indexed (1 passages; apiary.txt holds a different document)" in status
    again = b"The Brindlemoor apiary keeps exactly 417 beehives on Mount Tarrow.\n"
    assert "apiary.txt: unchanged" in gradio.upload_event(gradio.upload("apiary.txt", again))
    assert sorted(p.name for p in server.uploads.iterdir()) == ["apiary (2).txt", "apiary.txt", "observatory notes.txt"]
    hives = ask(server, "How many beehives does the Brindlemoor apiary keep?").json()
    honey = ask(server, "When does the Brindlemoor apiary sell its honey?").json()
    assert "417" in hives["answer"] and hives["citations"][0]["source"] == "apiary.txt"
    assert "Thursday" in honey["answer"] and honey["citations"][0]["source"] == "apiary (2).txt"


def test_a_docx_bomb_upload_is_refused(server, gradio, tmp_path):
    from ingest.test_hostile import docx_bomb  # tests/ is on the path (its conftest)

    docx_bomb(tmp_path / "report.docx")
    started = time.monotonic()
    status = gradio.upload_event(gradio.upload("report.docx", (tmp_path / "report.docx").read_bytes()))
    assert "report.docx: a part expands" in status and "possible decompression bomb" in status, status
    assert time.monotonic() - started < 30
    assert not (server.uploads / "report.docx").exists()


def test_a_lone_surrogate_is_bad_text_not_a_crash(server, gradio):
    def raw(body: bytes) -> httpx.Response:
        return httpx.post(f"{server.url}/api/ask", content=body, auth=(USER, PASSWORD), timeout=120,
                          headers={"Content-Type": "application/json"})  # fmt: skip

    r = raw(b'{"question": "\\ud800"}')
    assert r.status_code == 400 and r.json() == {"error": "Please ask a question: the text was empty."}
    r = raw(b'{"question": "\\ud800Why might Russia not send S-400s?", "history": [["\\udfffWho?", "\\ud800"]]}')
    assert r.status_code == 200 and r.json()["citations"]
    r = raw(b'{"question": "Who is he?", "history": [{"role": "user", "content": "\\ud800"}]}')
    assert r.status_code == 200
    ok, error, _ = gradio.run("ask", ["\ud800", None, None])
    assert not ok and error == "Please ask a question: the text was empty."
    ok, output, _ = gradio.run("ask", ["\ud800" + S400_Q, [["\udfffWho?", "x"]], None])
    assert ok and output[0]["citations"]
    ok, output, stream = gradio.run("respond", ["\ud800", None, "extractive", []])  # the chat
    assert ok and "Please ask a question: the text was empty." in json.dumps(output), stream
    ok, output, stream = gradio.run("respond", [S400_Q + "\ud800", None, "extractive", []])
    assert ok and "answer-done" in json.dumps(output) and "Cannot answer" not in json.dumps(output), stream


def test_llm_credentials_are_never_shown(server, gradio, seed_assistant):
    body = ask(server, S400_Q, generator="openai").json()
    assert body["generator"] == "reader" and "127.0.0.1:9/v1?token=***" in body["warning"], body
    ok, output, stream = gradio.run("respond", [S400_Q, None, "openai", []])
    assert ok and "127.0.0.1:9" in stream
    ok, output, _ = gradio.run("ask", [S400_Q, None, "openai"])
    assert ok and "127.0.0.1:9" in output[0]["warning"]
    cli = subprocess.run(
        [sys.executable, "-m", "assistant", "--index-dir", str(seed_assistant.settings.index_dir), "ask", S400_Q,
         "--json", "--generator", "openai", "--llm-url", LLM_URL, "--llm-timeout", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "ASSISTANT_PROGRESS": "0"},
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    warning = json.loads(cli.stdout)["warning"]
    assert "127.0.0.1:9/v1?token=***" in warning
    for shown in (json.dumps(body), stream, json.dumps(output), cli.stdout + cli.stderr):
        assert not any(leak in shown for leak in LEAKS), shown


def test_clients_never_see_server_paths(server, gradio):
    root = str(server.base)
    body = ask(server, S400_Q).json()
    assert body["citations"][0]["source"] == "seeds/putin-pezeshkian-ashgabat-s400.txt"
    ok, via_gradio, _ = gradio.run("ask", [S400_Q, None, None])
    ok, chat, _ = gradio.run("respond", [S400_Q, None, "extractive", []])
    session = uuid.uuid4().hex
    ok, docs, _ = gradio.run("documents", [], session)
    choices = [c[0] for c in docs[1]["choices"]]
    assert "seeds/tide-notes.txt" in choices and "observatory notes.txt" in choices
    pages = [gradio.http.get(route).text for route in ("/", "/config", "/gradio_api/info")]
    for shown in (json.dumps(body), json.dumps(via_gradio), json.dumps(chat), json.dumps(docs), *pages):
        assert root not in shown and str(server.gradio_tmp) not in shown, shown[:300]
    ok, removed, _ = gradio.run("remove", ["observatory notes.txt"], session)  # by shown name
    assert ok and "Removed observatory notes.txt (1 passages)." in removed[-1], removed
    assert not (server.uploads / "observatory notes.txt").exists()


def test_api_limits_body_size_and_type(server):
    url, auth = f"{server.url}/api/ask", (USER, PASSWORD)
    r = httpx.post(url, content=json.dumps({"question": S400_Q}), auth=auth, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = httpx.post(url, data={"question": S400_Q}, auth=auth)  # a form post
    assert r.status_code == 415
    big = json.dumps({"question": "Why?", "history": [["q" * 1000, "a" * 1000]] * 40})
    r = httpx.post(url, content=big, auth=auth, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "64 KB" in r.json()["error"]

    def chunks():  # no Content-Length: the limit holds while reading
        yield b'{"question": "Why?", "pad": "'
        for _ in range(200):
            yield b"x" * 1024
        yield b'"}'

    r = httpx.post(url, content=chunks(), auth=auth, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]
    r = httpx.post(url, content=json.dumps({"question": S400_Q}), auth=auth,
                   headers={"Content-Type": "application/json; charset=utf-8"})  # fmt: skip
    assert r.status_code == 200


def test_math_in_a_document_stays_text(server, gradio):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        context.add_cookies([{"name": k, "value": v, "url": server.url} for k, v in gradio.http.cookies.items()])
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(server.url, wait_until="load")
        page.fill("#question textarea", "How is the Velmora tide rule written?")
        page.click("#ask")
        page.wait_for_selector('#chat [data-testid="bot"] .answer-done')
        bubble = page.locator('#chat [data-testid="bot"]').last.inner_text()
        katex = page.locator("#chat .katex, #sources .katex").count()
        browser.close()
    assert "$$h = 2t + 5$$" in bubble, bubble
    assert katex == 0


def test_the_server_log_has_no_stack_traces(server, gradio):
    gradio.run("upload", [["/etc/hostname"]])  # malformed event data: Gradio itself refuses it
    time.sleep(0.5)
    log = server.log.read_text()
    assert "Traceback" not in log and 'File "' not in log, log
    assert "refused /gradio_api/queue/join: secret.md: refused: not a file uploaded to this server." in log
    assert "/api/ask answered 413" in log and "error: " in log


# -- hostile HTTP clients (issue #26): judged by their headers, before a body is read ----------
def raw(url: str, head: str, body: bytes = b"", *, source: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send a request written by hand (its body may be shorter than it claims) and read the reply.

    A server that reads the body before answering never replies: the socket times out and the test fails.
    """
    parts = urlsplit(url)
    address = (source, 0) if source else None
    with socket.create_connection((parts.hostname, parts.port), timeout=30, source_address=address) as sock:
        sock.sendall(head.encode("latin-1") + body)
        data = b""
        while b"\r\n\r\n" not in data and (piece := sock.recv(65536)):
            data += piece
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        while len(rest) < int(headers.get("content-length", 0)) and (piece := sock.recv(65536)):
            rest += piece
    return int(lines[0].split()[1]), headers, rest


def _post_head(path: str, length: int, *extra: str) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", f"Content-Length: {length}"]
    return "\r\n".join([*lines, *extra]) + "\r\n\r\n"


def _cookie(gradio: Gradio) -> str:
    return "Cookie: " + "; ".join(f"{k}={v}" for k, v in gradio.http.cookies.items())


def test_a_body_is_judged_by_its_headers_before_it_is_read(server, gradio):
    huge = 150 * 1024 * 1024  # claimed, never sent: only a server that reads it first would wait
    for path in ("/gradio_api/queue/join", "/gradio_api/no-such-route", "/gradio_api/upload", "/nowhere"):
        status, headers, body = raw(server.url, _post_head(path, huge), b'{"data": [')
        assert status == 401 and headers["connection"] == "close", (path, body)
        assert json.loads(body) == {"error": "Authentication required: log in first."}
    limits = {"/gradio_api/queue/join": "1 MB", "/gradio_api/upload": "2 MB", "/login": "16 KB", "/api/ask": "1 MB"}
    for path, limit in limits.items():
        status, _, body = raw(server.url, _post_head(path, huge, _cookie(gradio)), b'{"data": [')
        assert status == 413 and json.loads(body)["error"] == f"The request body is larger than {limit}.", path

    def pieces(n: int):  # no Content-Length: the limit holds while the body streams
        for _ in range(n):
            yield b"x" * 65536

    r = gradio.http.post("/gradio_api/queue/join", content=pieces(40), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "The request body is larger than 1 MB."
    r = gradio.http.post("/gradio_api/upload", files=[("files", ("big.txt", b"x" * 3 * 1024 * 1024, "text/plain"))])
    assert r.status_code == 413
    assert httpx.get(f"{server.url}/api/health").json() == {"status": "ok"}
    assert "Traceback" not in server.log.read_text()


def test_other_origins_can_neither_read_nor_act(server, gradio):
    preflight = ("OPTIONS /gradio_api/queue/join HTTP/1.1\r\nHost: assistant.example.com\r\nOrigin: {}\r\n"
                 "Access-Control-Request-Method: POST\r\n\r\n")  # fmt: skip
    status, headers, _ = raw(server.url, preflight.format(EVIL))  # the report's curl, verbatim
    assert status == 403 and "access-control-allow-origin" not in headers
    status, headers, _ = raw(server.url, preflight.format(FRIEND))  # ASSISTANT_ALLOWED_ORIGINS
    assert status == 204 and headers["access-control-allow-origin"] == FRIEND
    event = json.dumps({"fn_index": gradio.fns["documents"], "session_hash": "x9", "data": []})
    for origin in (EVIL, "null", f"http://assistant.example.com:{urlsplit(server.url).port}"):
        r = gradio.http.post("/gradio_api/queue/join", content=event,
                             headers={"Content-Type": "application/json", "Origin": origin,
                                      "Host": "assistant.example.com"})  # fmt: skip
        assert r.status_code == 403 and "Cross-origin request refused" in r.json()["error"], origin
        assert "access-control-allow-origin" not in r.headers
    piers = [("files", ("a.txt", b"The Velmora harbour has 12 piers.\n", "text/plain"))]
    r = gradio.http.post("/gradio_api/upload", headers={"Origin": EVIL}, files=piers)
    assert r.status_code == 403
    r = gradio.http.get("/config", headers={"Origin": EVIL, "Host": "assistant.example.com"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers  # the browser keeps it from EVIL
    own = f"http://assistant.example.com:{urlsplit(server.url).port}"
    r = gradio.http.post("/gradio_api/queue/join", content=event,
                         headers={"Content-Type": "application/json", "Origin": own,
                                  "Host": f"assistant.example.com:{urlsplit(server.url).port}"})  # fmt: skip
    assert r.status_code == 200 and "event_id" in r.json()
    r = gradio.http.get("/config", headers={"Origin": FRIEND})
    assert (
        r.headers["access-control-allow-origin"] == FRIEND and r.headers["access-control-allow-credentials"] == "true"
    )


def test_password_guessing_is_slowed_per_client(server):
    # Each test client speaks from its own loopback address, so the others are not slowed.
    def login(password: str, source: str) -> httpx.Response:
        with httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address=source)) as client:
            return client.post("/login", data={"username": USER, "password": password})

    codes = [login(f"guess-{i}", "127.0.0.3").status_code for i in range(6)]
    assert codes == [400] * 6
    refused = login(PASSWORD, "127.0.0.3")  # the right password, while the guesser is held back
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "Too many wrong passwords" in refused.json()["error"]
    assert login(PASSWORD, "127.0.0.4").status_code == 200  # another client is not held back
    with httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address="127.0.0.5")) as api:
        codes = [api.post("/api/ask", json={"question": "Why?"}, auth=(USER, f"no-{i}")).status_code for i in range(6)]
        assert codes == [401] * 6
        r = api.post("/api/ask", json={"question": S400_Q}, auth=(USER, PASSWORD))
        assert r.status_code == 429
    time.sleep(int(refused.headers["retry-after"]))
    assert login(PASSWORD, "127.0.0.3").status_code == 200  # a user who mistyped gets in after the pause


def test_hostile_events_get_a_plain_refusal_and_one_log_line(server, gradio):
    r = gradio.join("documents", [], "s1")
    body = {"fn_index": 999, "session_hash": "s1", "data": []}
    r = gradio.http.post("/gradio_api/queue/join", json=body)
    assert r.status_code == 422 and r.json() == {"error": "This page has no such event: reload the page."}
    for route in ("/gradio_api/call/no_such_api", "/gradio_api/run/no_such_api"):
        r = gradio.http.post(route, json={"data": []})
        assert r.status_code == 422 and r.json() == {"error": "This page has no such event: reload the page."}, route
    body = {"fn_index": gradio.fns["documents"], "session_hash": "s1", "data": "<secret input>"}
    r = gradio.http.post("/gradio_api/queue/join", json=body)
    assert r.status_code == 422 and r.json() == {"error": "The request is malformed: reload the page and try again."}
    forged = "/gradio_api/run%0aINFO: FORGED admin logged in"
    event = {"data": [[{"path": str(server.secret), "meta": {"_type": "gradio.FileData"}}]]}
    r = gradio.http.post(forged, json=event)
    assert r.status_code == 403
    time.sleep(0.5)
    log = server.log.read_text()
    assert not any(line.startswith("INFO: FORGED") for line in log.splitlines()), log
    assert "refused /gradio_api/run\\nINFO: FORGED admin logged in" in log
    assert "<secret input>" not in log and "Traceback" not in log and "KeyError" not in log


def test_clients_get_no_server_path_for_an_upload(server, gradio):
    r = gradio.http.post(
        "/gradio_api/upload", files=[("files", ("dock.txt", b"Pier 7 of Velmora is blue.\n", "text/plain"))]
    )
    assert r.status_code == 200
    (shown,) = r.json()
    assert re.fullmatch(r"[0-9a-f]{64}/dock\.txt", shown) and str(server.gradio_tmp) not in r.text
    assert gradio.http.get(f"/gradio_api/file={shown}").text == "Pier 7 of Velmora is blue.\n"  # the page's link
    assert "dock.txt: indexed" in gradio.upload_event(shown)
    assert gradio.join("upload", [[{"path": f"{'0' * 64}/../../host/secret.md"}]]).status_code == 403


def test_the_port_is_bound_before_an_interrupted_upload_is_recovered(tmp_path):
    """Kill mid-upload, start again: the server answers at once, says it is recovering, then indexes the file."""
    seeds = copy_seeds(tmp_path)
    index = tmp_path / "index"
    built = subprocess.run([sys.executable, "-m", "assistant", "--index-dir", str(index), "index", str(seeds)],
                           cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "ASSISTANT_PROGRESS": "0"})  # fmt: skip
    assert built.returncode == 0, built.stderr
    (index / "uploads").mkdir()
    (index / "uploads" / "observatory notes.txt").write_text(ORPHAN)  # copied, never indexed: the kill
    with open(index / ".index.lock", "a+") as lock:  # another indexing run holds the index: recovery must wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        with serve(index, seeds, log=tmp_path / "server.log", auth=f"{USER}:{PASSWORD}", ready=False) as url:
            deadline = time.monotonic() + 300
            while "Recovering" not in (health := httpx.get(f"{url}/api/health").json()).get("detail", ""):
                assert health["status"] == "starting" and time.monotonic() < deadline, health  # it cannot end: locked
                time.sleep(0.5)
            assert "Recovering from an interrupted upload: indexing 1 file(s)" in health["detail"]
            page = Gradio(url)
            r = page.http.post("/gradio_api/run/predict", json={"fn_index": page.fns["status"], "data": [],
                                                                "session_hash": "r1"})  # fmt: skip
            assert "indexing 1 file(s) that never reached the index" in json.dumps(r.json()["data"])
            early = httpx.post(f"{url}/api/ask", json={"question": S400_Q}, auth=(USER, PASSWORD), timeout=120)
            assert early.status_code == 200 and early.json()["citations"]  # answered from the index as it was
            fcntl.flock(lock, fcntl.LOCK_UN)
            deadline = time.monotonic() + 300
            while httpx.get(f"{url}/api/health").json()["status"] != "ok":
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.5)
            r = page.http.post("/gradio_api/run/predict", json={"fn_index": page.fns["status"], "data": [],
                                                                "session_hash": "r2"})  # fmt: skip
            assert "indexed 1 upload(s) that were missing from the index" in json.dumps(r.json()["data"])
            body = httpx.post(f"{url}/api/ask", json={"question": "How many brass telescopes are on Mount Arden?"},
                              auth=(USER, PASSWORD), timeout=120).json()  # fmt: skip
            assert "88" in body["answer"] and body["citations"][0]["source"] == "observatory notes.txt"
