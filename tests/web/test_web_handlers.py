"""The chat page's event handlers called directly, with no Gradio (nor FastAPI) loaded.

One subprocess builds a real index from a private seed folder, then drives `ChatHandlers` the way
the page does: ask, upload, list, remove, the `/ask` endpoint, and clear. It reports what the
handlers returned and which web frameworks got imported.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.ingest.loading import SUPPORTED_SUFFIXES
from assistant.web.uploads import UploadError, save_upload

ROOT = Path(__file__).resolve().parents[2]

SEED = (
    "Notes from the Brindlemoor apiary.\n\n"
    "The Brindlemoor apiary keeps exactly 417 beehives on the northern slope of Mount Tarrow. "
    "Its honey is sold every Thursday at the Quenby market.\n"
)
UPLOADED = (
    "Harbour notes.\n\n"
    "The Velmora lighthouse keeper is Ondrea Kasprzak <script>x()</script> and she lights the lamp at dusk.\n"
)

DRIVER = r"""
import json, sys
from pathlib import Path

from assistant.settings import Settings
from assistant.web.handlers import ChatHandlers
from assistant.web.service import Service

base = Path(sys.argv[1])
service = Service(Settings.from_env(index_dir=base / "index", seeds_dir=base / "seeds"))
service.warm_up()
h = ChatHandlers(service)
views = list(h.respond("How many beehives does the Brindlemoor apiary keep?", [], None))
last = views[-1]
folder = base / "gradio"
up = h.upload([str(folder / "harbour.txt")], folder=folder, received={str(folder / "harbour.txt")})
outside = h.upload([str(base / "seeds" / "apiary.txt")], folder=folder, received=set())
empty = h.upload([])
listed = h.documents()
ask = h.ask("Who is the Velmora lighthouse keeper?")
bad = h.ask("   ")
bad_history = h.ask("Who?", history="not a list")
removed = h.remove("harbour.txt")
missing = h.remove("harbour.txt")
cleared = h.clear()
print(json.dumps({
    "n_views": len(views),
    "last": {"question": last.question, "messages": last.messages, "sources": last.sources, "turns": len(last.turns)},
    "follow_up_history": [[t.question, t.answer] for t in last.turns],
    "upload": [up.table, up.choices, up.status],
    "outside": [outside.table is not None, outside.status],
    "empty": [empty.table, empty.choices, empty.status],
    "listed": listed.choices,
    "ask": ask.payload,
    "bad": [bad.payload, bad.error],
    "bad_history": [bad_history.payload, bad_history.error],
    "removed": [removed.choices, removed.status],
    "missing": missing.status,
    "cleared": [cleared.question, cleared.messages, cleared.turns, cleared.sources],
    "loaded": sorted(m for m in ("gradio", "fastapi", "starlette", "uvicorn") if m in sys.modules),
}))
"""


def test_handlers_work_without_gradio(tmp_path):
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "apiary.txt").write_text(SEED)
    (tmp_path / "gradio").mkdir()
    (tmp_path / "gradio" / "harbour.txt").write_text(UPLOADED)
    run = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])

    assert out["loaded"] == []  # no web framework was needed to run any handler
    # The answer streamed, then finished: the bubble cites [1] and the sources panel shows the passage.
    assert out["n_views"] >= 1
    last = out["last"]
    assert last["question"] == "" and last["turns"] == 1
    assert [m["role"] for m in last["messages"]] == ["user", "assistant"]
    assert "answer-done" in last["messages"][1]["content"] and 'class="cite">[1]' in last["messages"][1]["content"]
    assert "seeds/apiary.txt" in last["sources"] and "<mark>" in last["sources"]
    assert str(tmp_path) not in last["sources"]  # shown names, never server paths
    question, answer = out["follow_up_history"][0]
    assert question.startswith("How many beehives") and "[1]" in answer and "<" not in answer  # raw text, not HTML

    table, choices, status = out["upload"]
    assert "harbour.txt" in choices and "✔ harbour.txt: indexed" in status and "harbour.txt" in table
    assert out["outside"][0] and "refused: not a file uploaded to this server" in out["outside"][1]
    assert out["empty"][:2] == [None, None] and "Choose files" in out["empty"][2]
    assert sorted(out["listed"]) == ["harbour.txt", "seeds/apiary.txt"]

    ask = out["ask"]
    assert not ask["abstained"] and "Kasprzak" in ask["answer"]
    assert [c["source"] for c in ask["citations"]][:1] == ["harbour.txt"]
    assert out["bad"] == [None, "Please ask a question: the text was empty."]
    assert out["bad_history"][0] is None and out["bad_history"][1].startswith('"history" must be a list')

    choices, status = out["removed"]
    assert choices == ["seeds/apiary.txt"] and "Removed harbour.txt" in status
    assert "not in the index" in out["missing"]
    assert not (tmp_path / "index" / "uploads" / "harbour.txt").exists()
    assert out["cleared"][:3] == ["", [], []] and "Ask a question" in out["cleared"][3]


def test_uploads_accept_exactly_the_types_loading_reads(tmp_path):
    """One list of file types: every loadable suffix can be uploaded, anything else is refused naming them."""
    src, folder = tmp_path / "src", tmp_path / "uploads"
    src.mkdir()
    for suffix in SUPPORTED_SUFFIXES:
        given = src / f"a{suffix}"
        given.write_bytes(b"x")
        assert save_upload(given, given.name, folder, max_mb=1).name == given.name
    other = src / "a.xyz"
    other.write_text("x")
    with pytest.raises(UploadError, match=re.escape(f"upload {', '.join(SUPPORTED_SUFFIXES)} files")):
        save_upload(other, other.name, folder, max_mb=1)
    assert sorted(p.suffix for p in folder.iterdir()) == sorted(SUPPORTED_SUFFIXES)
