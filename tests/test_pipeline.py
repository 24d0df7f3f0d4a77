"""The assistant end to end over the seed article: real model, real Chroma."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.pipeline import QuestionError

ROOT = Path(__file__).resolve().parent.parent


def _cited_text(ans) -> str:
    return " ".join(c.text for c in ans.citations)


@pytest.mark.parametrize(
    ("question", "needle"),
    [
        ("Why might Russia not send S-400s?", "antagonis"),
        ("Where did Putin meet Pezeshkian?", "Ashgabat"),
        ("What has Iran been supplying to Russia?", "drones"),
    ],
)
def test_seed_questions_are_answered_from_the_right_passage(seed_assistant, question, needle):
    ans = seed_assistant.answer(question)
    assert not ans.abstained, ans.text
    assert ans.citations
    assert needle.lower() in _cited_text(ans).lower()
    for c in ans.citations:
        assert c.quote in c.text
        assert f"[{c.n}]" in ans.text
        source_text = Path(c.source).read_text(encoding="utf-8")
        assert source_text[c.start : c.end] == c.text


@pytest.mark.parametrize(
    "question",
    ["What is the capital of Peru?", "How do I bake sourdough bread?", "Who won the 1998 football world cup?"],
)
def test_off_topic_questions_are_declined(seed_assistant, question):
    ans = seed_assistant.answer(question)
    assert ans.abstained
    assert ans.citations == []
    assert "could not find" in ans.text.lower()


def test_follow_up_uses_the_earlier_turn(seed_assistant):
    first = "Who said Russia wouldn't want to antagonise Israel?"
    ans = seed_assistant.answer("Who is he?", history=[(first, seed_assistant.answer(first).text)])
    assert not ans.abstained
    assert "Stephen Hall" in _cited_text(ans)


def test_stream_yields_text_then_the_answer(seed_assistant):
    items = list(seed_assistant.stream("Where did Putin meet Pezeshkian?"))
    *deltas, final = items
    assert len(deltas) > 1 and all(isinstance(d, str) for d in deltas)
    assert "".join(deltas) == final.text


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x01", "x" * 200_000])
def test_bad_questions_get_a_clear_error(seed_assistant, bad):
    with pytest.raises(QuestionError) as err:
        seed_assistant.answer(bad)
    assert "question" in str(err.value).lower()


def test_printed_answer_shows_numbered_sources(seed_assistant):
    printed = str(seed_assistant.answer("Where did Putin meet Pezeshkian?"))
    assert "Sources:" in printed and "[1]" in printed


def _env(index_dir: Path, seeds: Path) -> dict:
    env = dict(os.environ, ASSISTANT_INDEX_DIR=str(index_dir), ASSISTANT_SEEDS_DIR=str(seeds), HF_HUB_OFFLINE="1")
    return env


def test_answer_in_a_fresh_process_builds_the_index_from_seeds(tmp_path, seed_dir):
    code = (
        "from assistant import answer; a = answer('Why might Russia not send S-400s?'); "
        "print(a); assert a.citations and not a.abstained"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path / "ix", seed_dir), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "Sources:" in proc.stdout
    assert any((tmp_path / "ix").iterdir())


def test_import_loads_no_model_and_no_gradio():
    code = (
        "import sys, assistant; from assistant import Assistant, answer; "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'gradio', 'chromadb') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_import_changes_no_environment_variable():
    """`from assistant import answer` must not reconfigure the application that imports it."""
    code = (
        "import os, pkgutil, importlib; before = dict(os.environ)\n"
        "import assistant\n"
        "from assistant import Answer, Assistant, Citation, Settings, answer\n"
        "for m in pkgutil.walk_packages(assistant.__path__, 'assistant.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(k for k in {*before, *os.environ} if before.get(k) != os.environ.get(k)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "TOKENIZERS_"))}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def _cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_index_and_ask_json_have_the_documented_fields(tmp_path, seed_dir):
    env = _env(tmp_path / "ix", seed_dir)
    proc = _cli("index", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"added", "updated", "unchanged", "removed", "chunks", "skipped"} <= report.keys()
    assert report["added"] == 1 and report["chunks"] > 0
    again = json.loads(_cli("index", str(seed_dir), "--json", env=env).stdout.strip().splitlines()[-1])
    assert again["unchanged"] == 1 and again["added"] == 0 and again["embedded"] == 0

    proc = _cli("ask", "Why might Russia not send S-400s?", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"answer", "short", "abstained", "citations", "generator", "warning"} <= out.keys()
    assert out["citations"]
    assert set(out["citations"][0]) == {
        *("n", "source", "text", "quote", "start", "end", "page", "score"),
        *("answer_start", "answer_end", "ocr", "section"),
    }


def test_cli_errors_are_one_line_without_traceback(tmp_path, seed_dir):
    env = _env(tmp_path / "ix", seed_dir)
    proc = _cli("ask", "   ", env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    proc = _cli("--chroma-url", "http://127.0.0.1:9", "ask", "hello", env=env)
    assert proc.returncode == 1
    assert "127.0.0.1:9" in proc.stderr and "Traceback" not in proc.stderr


def test_parts_are_built_once_when_many_threads_ask_at_once(tmp_path):
    """The first questions of a server arrive together: each part (store, generator, ...) must be one
    object for all of them, or two stores would edit one index and two readers load one model."""
    import threading

    from assistant.pipeline import Assistant

    a = Assistant(index_dir=tmp_path / "index")
    start = threading.Barrier(8)
    seen: list[tuple] = []

    def build() -> None:
        start.wait()
        seen.append((a.generator, a.store, a.embedder, a.extractive, a.thresholds))

    threads = [threading.Thread(target=build) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(seen) == 8
    assert all(all(x is y for x, y in zip(s, seen[0], strict=True)) for s in seen)


def test_warm_up_says_what_failed_instead_of_swallowing_it(tmp_path):
    """A reader model with a file missing, and an ONNX export that cannot be written (the cache folder
    is a file): both are reported, one line each, and the rest still loads."""
    import shutil

    from assistant.pipeline import Assistant
    from assistant.reading.reader import DEFAULT_MODEL_DIR

    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    broken = tmp_path / "reader"
    shutil.copytree(DEFAULT_MODEL_DIR, broken, ignore=shutil.ignore_patterns("*.onnx"))
    report = Assistant(index_dir=tmp_path / "index", cache_dir=blocked, reader_dir=broken).warm_up()
    assert not report.ok and set(report.failed) == {"embedding model", "generator"}
    assert (
        "Cannot build the embedding model" in report.failed["embedding model"]
        and str(blocked) in report.failed["embedding model"]
    )
    assert "model.onnx" in report.failed["generator"] and "missing" in report.failed["generator"]
    assert all("\n" not in line and "Traceback" not in line for line in report.lines())

    fine = Assistant(index_dir=tmp_path / "index", cache_dir=tmp_path / "good-cache").warm_up()
    assert fine.ok and fine.loaded == ("embedding model", "generator")
