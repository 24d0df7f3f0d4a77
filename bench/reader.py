"""Gold-context scores of the shipped extractive reader, as one JSON line.

qa-train dev EM/F1; on the held-out SQuAD v2 articles (recorded in the model's config.json, never
trained or calibrated on): has-answer F1, no-answer accuracy, overall EM/F1 at the shipped
threshold, no-answer AUROC; and reading latency for 4 passages of ~200 word pieces (2 threads).

    python bench/reader.py [--limit N] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from _common import DATA


def main() -> None:
    from assistant.reading import Reader
    from training.evaluate import score_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=0, help="questions per set (0: all)")
    p.add_argument("--model-dir", type=Path, default=None)
    args = p.parse_args()
    reader = Reader(args.model_dir, threads=2)
    config = json.loads((reader.model_dir / "config.json").read_text())
    scores = score_model(reader, DATA, seed=config["hyperparameters"]["seed"], limit=args.limit)
    heldout = config["squad2_articles"]["heldout"]
    size = round((reader.model_dir / "model.onnx").stat().st_size / 1e6, 1)
    line = {"bench": "reader", "variant": config.get("variant"), "model_mb": size, "heldout_articles": heldout}
    print(json.dumps(line | {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(scores).items()}))


if __name__ == "__main__":
    main()
