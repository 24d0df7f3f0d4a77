"""Off-topic questions must be declined: a list written after the decline model was tuned (held out).

Indexes each corpus into a temporary folder (SQuAD v2 dev articles, the bundled seed article, or
folders given on the command line) and asks every question through `Assistant.answer`.

    python bench/off_topic.py [FOLDER ...]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from _common import DATA, ROOT

from assistant import Assistant

QUESTIONS = [
    "How do I unclog a kitchen sink?",
    "What is a good name for a golden retriever puppy?",
    "How much should I tip a taxi driver in New York?",
    "How do I remove a red wine stain from a carpet?",
    "What time does the supermarket close on Sundays?",
    "How do I set up two-factor authentication on Gmail?",
    "What is the best mattress for side sleepers?",
    "How do I make pancakes without eggs?",
    "Which running shoes are good for flat feet?",
    "How do I cancel my Netflix subscription?",
    "What are the lyrics of Bohemian Rhapsody?",
    "How often should I water a cactus?",
    "How do I fix a leaking faucet?",
    "What is the cheapest way to fly to Tokyo?",
    "How do I write a cover letter for an internship?",
    "What is the best age to start piano lessons?",
    "How do I get rid of fruit flies?",
    "Should I buy or lease a car?",
    "How many hours of sleep does a teenager need?",
    "What is a good warm-up before jogging?",
    "How do I connect my printer to wifi?",
    "What wine goes well with salmon?",
    "How do I calm a crying baby at night?",
    "What is the recipe for guacamole?",
    "How do I clean white sneakers?",
    "What should I wear to a job interview?",
    "How do I meditate for beginners?",
    "What is the difference between baking soda and baking powder?",
    "How can I stop snoring?",
    "How do I paint a bedroom wall?",
    "Which board games are fun for four players?",
    "How do I take a screenshot on a Mac?",
    "What vaccines does a kitten need?",
    "How long does it take to learn to swim?",
    "How do I defrost chicken quickly?",
    "What are the opening hours of the Louvre?",
    "How do I make cold brew coffee?",
    "How do I back up my Android phone?",
    "What is a healthy breakfast for weight loss?",
    "How do I sharpen a kitchen knife?",
]


def main() -> int:
    folders = [Path(a) for a in sys.argv[1:]] or [DATA / "squad-v2-dev" / "docs", ROOT / "seeds"]
    out = {"questions": len(QUESTIONS)}
    for folder in folders:
        with tempfile.TemporaryDirectory() as index:
            assistant = Assistant(index_dir=index, progress=False)
            assistant.index([folder])
            answered = [q for q in QUESTIONS if not assistant.answer(q).abstained]
        label = folder.parent.name if folder.name == "docs" else folder.name
        out[label] = {"declined": round(1 - len(answered) / len(QUESTIONS), 3), "answered": answered}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
