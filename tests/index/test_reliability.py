"""Reliability under abuse: SIGKILL at random moments, two indexing runs at once, indexing while
the server answers, an LLM that is slow or talks garbage, and no secret in any output.

Everything runs the real CLI in subprocesses against real Chroma and the real embedding model.
Figures worth reporting are printed (run with `-s` to see them).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from assistant.index.store import Store
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "sk-test-SECRET123456"
PASSWORD = "PASSWORD123"

_WORDS = [
    "amber",
    "basalt",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "granite",
    "harbor",
    "island",
    "juniper",
    "kestrel",
    "lagoon",
    "meadow",
    "nectar",
    "orchard",
    "pebble",
    "quartz",
    "river",
    "saffron",
    "tundra",
    "umber",
    "valley",
    "willow",
    "yarrow",
    "zephyr",
    "beacon",
    "canyon",
    "dune",
    "estuary",
    "forest",
    "glacier",
    "heron",
    "inlet",
    "jasmine",
    "kelp",
    "lichen",
    "marsh",
    "nettle",
    "oasis",
    "prairie",
]


def env(**extra: str) -> dict[str, str]:
    base = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "ASSISTANT_PROGRESS": "0",
    }
    base.pop("ASSISTANT_DEBUG", None)
    return {**base, **extra}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "assistant", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_corpus(folder: Path, version: int, n: int = 150) -> None:
    """n small files with distinct content plus two larger ones; `version` changes every file."""
    rng = random.Random(version)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        a, b, c = rng.sample(_WORDS, 3)
        text = (
            f"Note {i} (edition {version}) is about the {a} {b} near {c}.\n\n"
            f"The {a} {b} of record {i} was surveyed in year {1800 + rng.randrange(200)}. "
            f"Observers of {c} counted {rng.randrange(10_000)} specimens during edition {version}. "
            f"A later survey of {b} {i} recorded the {c} as {rng.choice(_WORDS)}.\n"
        )
        (folder / f"note{i:03}.txt").write_text(text, encoding="utf-8")
    for j in range(2):
        paras = [
            f"Chapter {k} of long report {j}, edition {version}: the {rng.choice(_WORDS)} "
            f"{rng.choice(_WORDS)} moved {rng.randrange(1000)} metres towards the {rng.choice(_WORDS)}. " * 3
            for k in range(40)
        ]
        (folder / f"long{j}.txt").write_text("\n\n".join(paras), encoding="utf-8")


def snapshot(index_dir: Path) -> dict:
    """Everything the comparison needs, read through the Store API."""
    store = Store(Settings(index_dir=index_dir))
    records = store.files()
    chunks_col, _ = store._collections()
    ids = list(chunks_col.get(include=[])["ids"])
    listed = [i for r in records.values() for i in r.chunk_ids]
    return {
        "records": {s: (r.content_hash, r.chunk_ids) for s, r in records.items()},
        "ids": ids,
        "listed": listed,
        "count": store.count(),
    }


def assert_consistent(snap: dict) -> None:
    """No orphans, no dangling record, no duplicate."""
    assert len(snap["ids"]) == len(set(snap["ids"])) == snap["count"]
    assert set(snap["listed"]) == set(snap["ids"]), "orphan chunks or records listing missing chunks"


def run_index(index_dir: Path, folder: Path, *flags: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        cli("--index-dir", str(index_dir), "index", str(folder), "--json", *flags),
        capture_output=True,
        text=True,
        env=env(),
        timeout=timeout,
        cwd=ROOT,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def start_index(index_dir: Path, folder: Path) -> subprocess.Popen:
    """`assistant index FOLDER --json` in the background, its output captured as text."""
    return subprocess.Popen(
        cli("--index-dir", str(index_dir), "index", str(folder), "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
        cwd=ROOT,
    )


# -- 1. SIGKILL at random moments ------------------------------------------------------------------


def test_sigkill_at_random_moments_then_resume_matches_a_clean_index(tmp_path):
    folder = tmp_path / "docs"
    final_version = 3
    write_corpus(folder, final_version)
    # The embedding builds are made once per cache (the subprocesses share it): not inside the clean
    # run's time, or every later run would finish before the kill the timing was set for.
    from assistant.embedding import Embedder

    Embedder().encode(["warm up the cache"])
    durations = []
    for where in ("clean", "clean-again"):  # the first run of a process tree pays cold caches: time a second too
        started = time.monotonic()
        clean = run_index(tmp_path / where, folder)
        durations.append(time.monotonic() - started)
        assert clean.returncode == 0, clean.stderr
    duration = min(durations)
    expected = snapshot(tmp_path / "clean")
    assert_consistent(expected)
    assert len(expected["records"]) == 152

    rng = random.Random(20261128)
    crashed = tmp_path / "crashed"
    outcomes = []
    for cycle, version in enumerate(range(final_version + 1)):
        write_corpus(folder, version)  # every file changes: each killed run has everything to redo
        fraction = 0.25 + 0.6 * (cycle + rng.random()) / (final_version + 1)  # model load included
        proc = subprocess.Popen(
            cli("--index-dir", str(crashed), "index", str(folder), "--json"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env(),
            cwd=ROOT,
        )
        time.sleep(fraction * duration)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(60)
        after_kill = snapshot(crashed)
        listed = set(after_kill["listed"])
        assert listed <= set(after_kill["ids"]), "a file record lists a chunk that is not stored"
        resumed = run_index(crashed, folder)
        assert resumed.returncode == 0, resumed.stderr
        state = snapshot(crashed)
        assert_consistent(state)
        assert len(state["records"]) == 152
        outcomes.append(
            {
                "delay_s": round(fraction * duration, 1),
                "killed": killed,
                "records_after_kill": len(after_kill["records"]),
                "chunks_after_kill": after_kill["count"],
                "orphans_after_kill": len(set(after_kill["ids"]) - listed),
                "resume_embedded": json.loads(resumed.stdout)["embedded"],
            }
        )

    final = snapshot(crashed)
    assert final["records"] == expected["records"]  # same sources, hashes and chunk ids: nothing lost
    assert sorted(final["ids"]) == sorted(expected["ids"]) and final["count"] == expected["count"]
    again = run_index(crashed, folder)
    assert again.returncode == 0 and json.loads(again.stdout)["embedded"] == 0
    print(
        f"\nclean runs {durations[0]:.1f}s, {durations[1]:.1f}s, {expected['count']} chunks;",
        f"kill-and-resume cycles: {outcomes}",
    )
    assert sum(o["killed"] for o in outcomes) >= 2, outcomes  # a loaded machine may finish a run early


# -- 2. two runs at once ---------------------------------------------------------------------------


def test_two_cli_runs_at_once_both_finish_and_no_wait_fails_fast(tmp_path):
    folder = tmp_path / "docs"
    write_corpus(folder, 7, n=40)
    index_dir = tmp_path / "index"
    procs = [start_index(index_dir, folder) for _ in range(2)]
    results = [(p.wait(300), *p.communicate()) for p in procs]
    assert [rc for rc, _, _ in results] == [0, 0], results
    assert all("Traceback" not in err for _, _, err in results)
    reports = [json.loads(out) for _, out, _ in results]
    assert sorted(r["added"] for r in reports) == [0, 42]  # one did the work, the other found it done
    assert sorted(r["unchanged"] for r in reports) == [0, 42]
    assert sum("Waiting for another indexing run" in err for _, _, err in results) == 1

    state = snapshot(index_dir)
    assert_consistent(state)
    assert state["count"] == reports[0]["chunks"] == reports[1]["chunks"]
    assert sum(r["embedded"] for r in reports) == state["count"]  # nothing embedded twice

    with open(index_dir / ".index.lock", "a+") as fh:  # another run holds the lock
        fcntl.flock(fh, fcntl.LOCK_EX)
        busy = run_index(index_dir, folder, "--no-wait", timeout=120)
        fcntl.flock(fh, fcntl.LOCK_UN)
    assert busy.returncode == 1 and busy.stdout == ""
    lines = busy.stderr.strip().splitlines()
    assert len(lines) == 1 and "Another indexing run" in lines[0], busy.stderr


# -- 3. indexing while the server answers ----------------------------------------------------------

NEW_FACT = (
    "Lighthouse log\n\nThe Quillmoor lighthouse lens was rebuilt by keeper Ottavia Brennick in 1897 "
    "after the winter storm cracked the old prism.\n"
)
NEW_QUESTION = "Who rebuilt the Quillmoor lighthouse lens?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    seeds = tmp_path_factory.mktemp("serve-seeds")
    for f in (ROOT / "seeds").iterdir():
        shutil.copy(f, seeds / f.name)
    index_dir = tmp_path_factory.mktemp("serve-index")
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cli("--index-dir", str(index_dir), "serve", "--port", str(port), "--auth", f"user:{PASSWORD}"),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env(ASSISTANT_SEEDS_DIR=str(seeds)),
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/api/health", timeout=2).json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the server did not come up: " + log.read_text())
        yield url, index_dir, log
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def ask(url: str, question: str) -> httpx.Response:
    return httpx.post(url + "/api/ask", json={"question": question}, auth=("user", PASSWORD), timeout=60)


def test_server_keeps_answering_while_another_process_indexes(server, tmp_path):
    url, index_dir, _ = server
    other = tmp_path / "other"
    write_corpus(other, 11, n=60)
    (other / "lighthouse.txt").write_text(NEW_FACT, encoding="utf-8")
    before = ask(url, NEW_QUESTION).json()
    assert not any(str(other) in c["source"] for c in before["citations"])

    indexing = start_index(index_dir, other)
    questions = ["Where did Putin meet Pezeshkian?", "What did they discuss?", NEW_QUESTION, "S-400"]
    statuses: list[int] = []
    deadline = time.monotonic() + 240
    while indexing.poll() is None and time.monotonic() < deadline:
        r = ask(url, questions[len(statuses) % len(questions)])
        statuses.append(r.status_code)
        assert r.status_code == 200, r.text
        assert set(r.json()) >= {"answer", "citations", "generator"}
    out, err = indexing.communicate(timeout=60)
    assert indexing.returncode == 0, err
    assert json.loads(out)["added"] == 63  # 60 notes, 2 long reports, the lighthouse log

    time.sleep(1.5)  # the server checks the generation stamp at most once a second
    after = ask(url, NEW_QUESTION)
    assert after.status_code == 200, after.text
    data = after.json()
    sources = [c["source"] for c in data["citations"]]
    print(f"\n{len(statuses)} answers during indexing, all 200; after: {sources} {data['answer'][:120]!r}")
    assert len(statuses) >= 3
    assert sources and sources[0].endswith("lighthouse.txt"), data
    assert "Brennick" in data["answer"]


def test_serve_never_prints_the_password(server):
    _, _, log = server
    text = log.read_text()
    assert "Serving on" in text and PASSWORD not in text, text


# -- 4. an LLM server that is slow or returns garbage ----------------------------------------------


class FakeLLM(BaseHTTPRequestHandler):
    """POST /v1/chat/completions misbehaving as `mode` says; echoes the Authorization header in errors."""

    mode = "slow"
    release = threading.Event()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.mode == "slow":
            self.release.wait(15)
            body, status, kind = b"{}", 200, "application/json"
        elif self.mode == "garbage":
            body, status, kind = b"<html>\x00 not json {{{ garbage", 200, "application/json"
        else:
            leak = self.headers.get("authorization", "")
            body = json.dumps({"error": {"message": f"internal failure for {leak}"}}).encode()
            status, kind = 500, "application/json"
        try:
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (timeout): nothing to answer
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def llm_url():
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeLLM)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    FakeLLM.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


@pytest.fixture(scope="module")
def llm_assistant(seed_assistant, llm_url):
    from assistant import Assistant

    return Assistant(
        index_dir=seed_assistant.settings.index_dir,
        generator="openai",
        llm_url=llm_url,
        llm_timeout=2,
        llm_api_key=SECRET_KEY,
        progress=False,
    )


QUESTION = "Where did Putin and Pezeshkian meet?"


@pytest.mark.parametrize("mode, problem", [("slow", "within 2 s"), ("garbage", ""), ("error", "500")])
def test_misbehaving_llm_falls_back_to_the_extractive_answer(llm_assistant, seed_assistant, llm_url, mode, problem):
    FakeLLM.mode = mode
    expected = seed_assistant.answer(QUESTION)
    llm_assistant.embedder.warm_up()
    llm_assistant.retrieve(QUESTION)  # model and index loaded: only the LLM is timed
    for how in ("answer", "stream"):
        started = time.monotonic()
        if how == "answer":
            ans = llm_assistant.answer(QUESTION)
        else:
            items = list(llm_assistant.stream(QUESTION))
            ans = items[-1]
            assert "".join(items[:-1]).strip() == ans.text.strip()
        took = time.monotonic() - started
        print(f"\n{mode}/{how}: {took:.1f}s, warning: {ans.warning}")
        assert took < 15, (mode, how, took)
        assert ans.generator == "reader" and ans.warning, (mode, how, ans)
        assert llm_url in ans.warning and problem in ans.warning, ans.warning
        assert SECRET_KEY not in ans.warning and "SECRET" not in ans.warning
        assert ans.text == expected.text and ans.citations == expected.citations


# -- 5. no secrets in output -------------------------------------------------------------------------


def test_the_api_key_never_appears_in_output(seed_assistant, llm_url, tmp_path):
    assert SECRET_KEY not in repr(Settings.from_env(llm_api_key=SECRET_KEY))
    os.environ["ASSISTANT_LLM_API_KEY"] = SECRET_KEY
    try:
        assert SECRET_KEY not in repr(Settings.from_env())
    finally:
        del os.environ["ASSISTANT_LLM_API_KEY"]

    FakeLLM.mode = "error"  # the server echoes the Authorization header back in its error
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    for url, flags in ((llm_url, ("--json",)), (unreachable, ("--stream",))):
        done = subprocess.run(
            cli(
                "--index-dir",
                str(seed_assistant.settings.index_dir),
                "ask",
                QUESTION,
                *flags,
                "--generator",
                "openai",
                "--llm-url",
                url,
                "--llm-timeout",
                "5",
            ),
            capture_output=True,
            text=True,
            env=env(ASSISTANT_LLM_API_KEY=SECRET_KEY),
            timeout=120,
            cwd=ROOT,
        )
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert url in done.stdout  # the warning names the endpoint...
        assert "SECRET" not in done.stdout + done.stderr  # ...and never the key
