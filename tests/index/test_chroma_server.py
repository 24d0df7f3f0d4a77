"""Everything works the same through a real Chroma server (`--chroma-url`), and a server that is
down gives one clear line naming it, then recovers without restarting the assistant."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMA = Path(sys.executable).parent / "chroma"

TOPICS = {
    "volcanoes.txt": "Volcanoes\n\nVolcanoes erupt when pressure from molten rock beneath the crust is released. "
    "The eruption throws out ash, lava and gases such as sulfur dioxide.\n",
    "reefs.txt": "Coral reefs\n\nCoral reefs are built by colonies of tiny animals that secrete calcium carbonate. "
    "Warm shallow water suits them best.\n",
    "comets.txt": "Comets\n\nComets grow bright tails of gas and dust when their orbit brings them near the Sun. "
    "Halley's comet returns about every 76 years.\n",
}

pytestmark = pytest.mark.skipif(not CHROMA.exists(), reason="the chroma server CLI is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `chroma run` process on a loopback port, started and stopped by the test."""

    def __init__(self, path: Path, port: int, log: Path):
        self.path, self.port, self.log = path, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(CHROMA), "run", "--host", "127.0.0.1", "--port", str(self.port), "--path", str(self.path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("chroma did not answer its heartbeat in 90 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chroma")
    srv = Server(folder / "data", free_port(), folder / "server.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    for name, text in TOPICS.items():
        (folder / name).write_text(text)
    return folder


def cli(*args: str, index_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    env.pop("ASSISTANT_CHROMA_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "assistant", "--index-dir", str(index_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_indexes_incrementally_and_answers_through_the_server(server, corpus, tmp_path):
    local = tmp_path / "cache"
    first = cli("--chroma-url", server.url, "index", str(corpus), "--json", index_dir=local)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["added"] == 3 and report["embedded"] == report["chunks"] > 0
    assert not any(local.glob("*.sqlite3")), "the embedded store must not be used"

    again = cli("--chroma-url", server.url, "index", str(corpus), "--json", index_dir=local)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) | {"skipped": []} == {**report, "added": 0, "unchanged": 3, "embedded": 0}

    asked = cli("--chroma-url", server.url, "ask", "What gases do volcanoes release?", "--json", index_dir=local)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert not answer["abstained"] and "sulfur dioxide" in answer["answer"]
    assert answer["citations"][0]["source"].endswith("volcanoes.txt")


def test_python_api_hybrid_search_and_updates_through_the_server(server, corpus, tmp_path):
    from assistant import Assistant
    from assistant.ingest.loading import source_name

    # A fresh local cache: the keyword index must be rebuilt from the server's contents.
    assistant = Assistant(chroma_url=server.url, index_dir=tmp_path / "other-machine", progress=False)
    report = assistant.index([corpus])
    assert report.embedded == 0 and report.unchanged == 3
    assert len(assistant.store.keyword) == assistant.store.count() > 0
    hits = assistant.retrieve("Halley 76 years")
    assert hits[0].chunk.source.endswith("comets.txt") and hits[0].keyword > 0

    # Another client edits a file; this one sees the change through the generation stamp.
    writer = Assistant(chroma_url=server.url, index_dir=tmp_path / "writer", progress=False)
    path = corpus / "reefs.txt"
    old = set(writer.store.files()[source_name(path)].chunk_ids)
    path.write_text(TOPICS["reefs.txt"].replace("Warm shallow water", "Clear turquoise lagoons"))
    try:
        updated = writer.index([corpus])
        assert updated.updated == 1 and updated.embedded > 0
        new = set(writer.store.files()[source_name(path)].chunk_ids)
        assert old - new and not (old - new) & set(writer.store.get_with_vectors(list(old)))
        assistant.store.sync_keyword(max_age_s=0)
        hits = assistant.retrieve("turquoise lagoons")
        assert hits[0].chunk.id in new and hits[0].keyword > 0
        result = assistant.answer("What do coral reefs like?")
        assert not result.abstained and result.citations[0].source.endswith("reefs.txt")
    finally:
        path.write_text(TOPICS["reefs.txt"])
        writer.index([corpus])


def test_server_down_is_one_clear_line_and_recovery_needs_no_restart(server, corpus, tmp_path):
    from assistant import Assistant
    from assistant.index.store import StoreError

    assistant = Assistant(chroma_url=server.url, index_dir=tmp_path / "cache", progress=False)
    assert not assistant.answer("How often does Halley's comet return?").abstained
    server.stop()
    try:
        down = cli("--chroma-url", server.url, "ask", "Why do volcanoes erupt?", index_dir=tmp_path / "cli")
        assert down.returncode == 1
        lines = down.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and server.url in lines[0], down.stderr
        assert "Traceback" not in down.stderr and not down.stdout.strip()

        with pytest.raises(StoreError, match=server.url):
            assistant.answer("Why do volcanoes erupt?")
    finally:
        server.start()  # same port and data folder
    result = assistant.answer("Why do volcanoes erupt?")
    assert not result.abstained and result.citations[0].source.endswith("volcanoes.txt")
    assert assistant.index([corpus]).embedded == 0


def test_a_server_collection_records_what_built_it(server, tmp_path):
    from assistant.errors import IndexMismatchError
    from assistant.index.store import Store
    from assistant.schema import IndexStamp
    from assistant.settings import Settings

    settings = Settings(chroma_url=server.url, index_dir=tmp_path / "cache", collection="stamped")
    Store(settings).count()  # a collection from before stamps
    ours = IndexStamp("sentence-transformers/all-MiniLM-L6-v2", 384, "1")
    assert Store(settings, stamp=ours).count() == 0  # opened, and stamped
    with pytest.raises(IndexMismatchError, match="--collection") as err:
        Store(settings, stamp=IndexStamp("BAAI/bge-base-en-v1.5", 768, "1")).count()
    assert server.url in str(err.value) and "bge-base" in str(err.value)
