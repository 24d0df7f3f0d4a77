"""Many users chatting at once through the OpenAI-compatible endpoint, each with its own `openai` client.

Builds a small index (several SQuAD v2 dev articles) in a temporary folder, starts
`python -m assistant serve` on a free loopback port with an API key, and runs `--users`
simultaneous `openai.OpenAI` clients against `/v1/chat/completions`. Each user keeps its own
conversation about one article: a question from it, then `--rounds - 1` follow-ups that name
their own topic (other questions about the same article), sent with the user's whole history;
every other turn streams. A follow-up citing another user's article would mean conversations
mixed (cross-talk); errors count every failed request. Bounded in count and time; loopback only.

    python bench/openai_concurrent.py --json [--users 20] [--rounds 2]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import Tally, chat_parser, served, squad_articles

KEY = "sk-bench-local"


def ask(client, messages: list[dict], stream: bool) -> tuple[str, list[dict], bool]:
    """One turn: (answer text, citations, declined), plain or streamed."""
    if not stream:
        r = client.chat.completions.create(model="assistant", messages=messages)
        return r.choices[0].message.content, r.model_extra["citations"], r.model_extra["abstained"]
    text, last = "", None
    for chunk in client.chat.completions.create(model="assistant", messages=messages, stream=True):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            if chunk.choices[0].finish_reason:
                last = chunk
    if last is None:
        raise RuntimeError("the stream ended without a finishing chunk")
    return text, last.model_extra["citations"], last.model_extra["abstained"]


def main() -> int:
    args = chat_parser(__doc__, 2, "turns per user, each about the user's own article").parse_args()

    from openai import OpenAI

    docs, questions = squad_articles(args.articles)
    work = Path(tempfile.mkdtemp(prefix="bench-openai-"))
    tally = Tally()
    with served(docs, work, {"ASSISTANT_API_KEY": KEY}) as base:

        def user(n: int) -> None:
            doc = docs[n % len(docs)]
            own = questions[doc.name][(n // len(docs)) * args.rounds :]
            client = OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, timeout=args.timeout)
            messages: list[dict] = []
            for turn in range(args.rounds):
                messages.append({"role": "user", "content": own[turn % len(own)]})
                start = time.perf_counter()
                try:
                    text, citations, declined = ask(client, messages, stream=turn % 2 == 1)
                except Exception as exc:  # count it, keep going
                    tally.error(exc)
                    messages.pop()
                    continue
                elapsed = (time.perf_counter() - start) * 1000
                sources = {Path(c["source"]).name for c in citations}
                kind = "declined" if declined else "own" if sources <= {doc.name} else "other"
                # a follow-up: only the user's own history says what it is about
                tally.answer(elapsed, kind if turn else None)
                messages.append({"role": "assistant", "content": text})

        wall = tally.run(user, args.users, args.timeout * args.rounds)
        server_errors = sum("error" in line.lower() for line in (work / "server.log").read_text().splitlines())

    tally.report(
        {"users": args.users, "requests": args.users * args.rounds},
        wall,
        {"server_log_error_lines": server_errors},
        args.json,
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
