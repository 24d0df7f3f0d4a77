"""Many users chatting at once, each through its own `gradio_client` session.

Builds a small index (several SQuAD v2 dev articles) in a temporary folder, starts
`python -m assistant serve` on a free loopback port, and runs `--users` simultaneous
`gradio_client.Client` sessions. Each user talks about one article: a question from it, then
`--rounds - 1` follow-ups ("What else is known about that?") that only make sense with that user's
own earlier turn. A follow-up stays in its own conversation when its answer cites the user's
article (or declines); an answer citing another user's article would mean conversations mixed.
Bounded in count and time; loopback only.

    python bench/concurrent_chat.py --json [--users 20] [--rounds 3]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import Tally, chat_parser, served, squad_articles

FOLLOW_UP = "What else is known about that?"


def main() -> int:
    args = chat_parser(__doc__, 3, "turns per user: one question, then follow-ups").parse_args()
    docs, first_questions = squad_articles(args.articles)
    work = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    tally = Tally()
    with served(docs, work) as base:
        from gradio_client import Client

        def user(n: int) -> None:
            doc = docs[n % len(docs)]
            question = first_questions[doc.name][n // len(docs)]
            client = Client(base, verbose=False)  # one session per user
            history: list[list[str]] = []
            for turn in range(args.rounds):
                asked = question if turn == 0 else FOLLOW_UP
                start = time.perf_counter()
                try:
                    result = client.predict(question=asked, history=history, api_name="/ask")
                except Exception as exc:  # count it, keep going
                    tally.error(exc)
                    continue
                elapsed = (time.perf_counter() - start) * 1000
                sources = {Path(c["source"]).name for c in result["citations"]}
                kind = None
                if turn:
                    kind = "declined" if result["abstained"] else "own" if doc.name in sources else "other"
                tally.answer(elapsed, kind)
                history.append([asked, result["answer"]])

        wall = tally.run(user, args.users, args.timeout * args.rounds)

    tally.report({"users": args.users, "questions": args.users * args.rounds}, wall, {}, args.json)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
