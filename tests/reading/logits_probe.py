"""Print the reader model's start/end logits for a few fixed windows, as JSON (run natively or under qemu).

    python tests/reading/logits_probe.py MODEL_DIR

Kept free of the assistant package's heavier imports so that a run under ``qemu-x86_64`` stays short:
only onnxruntime, tokenizers and numpy. Each window is run on its own, as the reader runs them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

ARTICLE = Path(__file__).resolve().parents[2] / "seeds" / "putin-pezeshkian-ashgabat-s400.txt"
# (question, a phrase of the paragraph read): the bundled-article answers that AVX2 CPUs once got wrong.
PROBES = [
    ("When will Putin meet Pezeshkian?", "Ashgabat on Friday"),
    ("Who said Russia wouldn't want to antagonise Israel?", "said Stephen Hall"),
    ("Where are Putin and Pezeshkian meeting?", "Ashgabat on Friday"),
]


def paragraph(phrase: str) -> str:
    blocks = [b.strip() for b in ARTICLE.read_text(encoding="utf-8").split("\n\n")]
    return next(b for b in blocks if phrase in b)


def logits(model_dir: Path) -> list[dict]:
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=256, strategy="only_second")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_dir / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    out = []
    for question, phrase in PROBES:
        enc = tok.encode(question, paragraph(phrase))
        feeds = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(enc.ids)), dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        start, end = session.run(["start_logits", "end_logits"], feeds)
        passage = [t == 1 for t in enc.sequence_ids]
        out.append({"question": question, "passage": passage, "start": start[0].tolist(), "end": end[0].tolist()})
    return out


if __name__ == "__main__":
    print(json.dumps(logits(Path(sys.argv[1]))))
