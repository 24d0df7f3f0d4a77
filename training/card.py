"""Writes model/MODEL_CARD.md from the model's config.json, so the card always matches the shipped files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

LICENCES = """\
| data | use | licence |
|---|---|---|
| qa-train: SQuAD 1.1 (13 dev articles that are not SQuAD 2.0 dev articles) | answers | CC BY-SA 4.0 |
| qa-train: Natural Questions via QED (Wikipedia) | answers | CC BY-SA 3.0 |
| qa-train: COVID-QA (CORD-19 papers) | answers | Apache-2.0 (papers CC BY) |
| SQuAD 2.0 dev, 10 of its 18 shipped articles | answers and unanswerable questions | CC BY-SA 4.0 |
| SQuAD 2.0 dev, 2 more articles | calibration of the answer probability and threshold only | CC BY-SA 4.0 |
| SQuAD 2.0 dev, 6 held-out articles | scores below only | CC BY-SA 4.0 |

SQuAD and Natural Questions are ShareAlike (CC BY-SA): this model is trained on them, so it is shared
with attribution to those sources (above) and under the same terms (CC BY-SA 4.0); it must not be
relicensed under closed terms. The base model all-MiniLM-L6-v2 is Apache-2.0."""


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _variant_row(name: str, v: dict) -> str:
    latency = f"{v['latency_p50_ms']:.0f} / {v['latency_p95_ms']:.0f} ms"
    return f"| {name} | {v['model_mb']} MB | {_pct(v['dev_f1'])} | {latency} |"


def _cpus(config: dict) -> str:
    """The per-CPU table (issue #22): where the scores were measured, and with which integer kernels."""
    rows = config.get("cpus") or []
    if not rows:
        return ""
    lines = "\n".join(
        f"| {r['cpu']} | {r['weights']} | {_pct(r['heldout_overall_f1'])} | {_pct(r['heldout_has_answer_f1'])} | "
        f"{_pct(r['heldout_no_answer_accuracy'])} | {_pct(r['dev_f1'])} | {r['note']} |"
        for r in rows
    )
    return f"""
## Scores on each kind of CPU

The weights are int8 values stored as uint8 (`training/quantize.py`): onnxruntime then multiplies them
with its U8U8 kernels, which compute the exact integer products on every x86 CPU. With int8 storage
(U8S8, before issue #22) AVX-512 VNNI and AMX CPUs computed exact products but AVX2-only CPUs summed pairs
of products in saturating 16-bit registers (`vpmaddubsw`), and answered differently ("today" for "When will
Putin meet Pezeshkian?" instead of "Friday"). Activations are still quantized with one scale per call, so
the reader runs each window on its own (see `docs/cpus.md`).

| CPU | weights (kernels) | held-out F1 | has-answer F1 | no-answer acc. | qa-train dev F1 | measured |
|---|---|---|---|---|---|---|
{lines}
"""


def _focus(config: dict) -> str:
    """The paragraph and table on the focus epoch and the weight blend ("" for models trained without)."""
    hp, focus = config["hyperparameters"], config.get("focus") or {}
    if not hp.get("focus_epochs") or not focus:
        return ""
    rows = "\n".join(f"| {k[10:]} | {v:,} |" for k, v in focus["counts"].items() if k.startswith("examples"))
    return f"""
Then {hp["focus_epochs"]} "focus" epoch at lr {hp["focus_lr"]} on near misses: every question of the SQuAD 2.0
training articles, {hp["perturbed"]:,} answerable questions with a name or number swapped for one their
context lacks (now unanswerable), {hp["hard"]:,} questions paired with the other passage of their article
that shares most words with them, and {hp["replay"]:,} qa-train examples replayed ({focus["windows"]:,} windows).
The shipped weights are {hp["keep"]} × the focus epoch's + {1 - hp["keep"]:.1f} × the main epochs' (a weight
average: the focus epoch alone sharpened "no answer" but lost some answering on the bundled article and on
qa-train dev; the average beat both on qa-train dev).

| focus examples by kind | count |
|---|---|
{rows}
"""


def render(config: dict) -> str:
    """The card's Markdown text."""
    s, arts, hp = config["scores"], config["squad2_articles"], config["hyperparameters"]
    latency = f"{s['latency_p50_ms']:.0f} / {s['latency_p95_ms']:.0f} ms"
    n = hp.get("qa_train_examples", 12839)
    subset = f"a seeded subset of {n:,} of the 12,839 qa-train examples"
    subset = "all 12,839 qa-train examples" if n >= 12839 else subset
    counts = "\n".join(f"| {k} | {v:,} |" for k, v in config["counts"].items() if not k.startswith("examples"))
    examples = "\n".join(f"| {k[10:]} | {v:,} |" for k, v in config["counts"].items() if k.startswith("examples"))
    cal, var = config["calibration"], config["variants"]
    loss = 100 * (var["fp32"]["dev_f1"] - var["int8"]["dev_f1"])
    change = f"loses {loss:.1f} F1 points to" if loss >= 0 else f"scores {-loss:.1f} F1 points above"
    why = (
        f"int8 {change} float32 on qa-train dev (the rule: lose at most 2) and is about 4× smaller"
        if config["variant"] == "int8"
        else f"int8 lost {loss:.1f} F1 points to float32 on qa-train dev (the rule: at most 2)"
    )
    variants = "\n".join(_variant_row(name, v) for name, v in config["variants"].items())
    return f"""# Extractive reader (MiniLM-L6 span model)

Finds the answer span in a passage, or says that the passage does not answer the question
(issue #12). Used through `assistant.reading.Reader` (onnxruntime + tokenizers, no torch).

- **Base model**: {config["base_model"]}: 6 layers, 384 hidden;
  its own copy, the index's embedding model is untouched. Head: one linear layer giving start and end logits
  per word piece.
- **No answer**: SQuAD 2.0 convention, start = end = [CLS]. Answer probability = sigmoid(a × margin + b) with
  a = {cal["scale"]:.4f}, b = {cal["bias"]:.4f} (logistic fit on the calibration articles), margin = best span score
  (start + end logit, span ≤ 30 word pieces) − [CLS] score of the same window;
  a span counts as an answer when its probability ≥ **{config["threshold"]:.3f}** (the threshold that maximised
  overall F1 on the calibration articles).
- **Windows**: {config["max_length"]} word pieces (question included, cut at 64), stride {config["stride"]}.
- **Shipped variant**: `{config["variant"]}` (ONNX, opset 17; int8 = onnxruntime dynamic quantization of the
  float32 export, per-channel weight scales, weights stored as uint8 so that every CPU computes the same
  integers): {why} (see the tables below).

## Training

```
{config["command"]}
```

Seed {hp["seed"]}, {hp.get("epochs", 1)} epoch(s), each with a fresh AdamW starting at
lr {hp["lr"]} × {hp.get("lr_decay", 1)}^epoch (10% linear warmup, then linear decay) and its own
seeded batch order, batch {hp["batch_size"]} windows of similar length, bf16 autocast on CPU, 2 threads:
**{config["train_seconds"] / 60:.0f} min** on a shared 2-core machine. Data: {subset}, every question
of the SQuAD 2.0 training articles, {hp["swapped"]} questions paired with another passage of the same
article or source. Windows that cut the answer are dropped. Data files (sha256): `{json.dumps(config["data_sha256"])}`.
{_focus(config)}

| examples by kind | count |
|---|---|
{examples}

| windows by kind | count |
|---|---|
{counts}
| **windows trained on** | **{config["windows"]:,}** |

SQuAD 2.0 dev articles (split by a seeded shuffle):
- training: {", ".join(arts["train"])}
- calibration: {", ".join(arts["calibration"])}
- **held out** (never trained or calibrated on): {", ".join(arts["heldout"])}

{LICENCES}

## Scores (gold contexts, official SQuAD v2 normalisation)

| set | score |
|---|---|
| qa-train dev ({s["dev_questions"]} questions, all answerable) | EM {_pct(s["dev_em"])}, F1 {_pct(s["dev_f1"])} |
| held-out SQuAD 2.0 ({s["heldout_questions"]} questions), has-answer F1 | {_pct(s["heldout_has_answer_f1"])} |
| held-out, no-answer accuracy | {_pct(s["heldout_no_answer_accuracy"])} |
| held-out, overall EM / F1 | {_pct(s["heldout_overall_em"])} / {_pct(s["heldout_overall_f1"])} |
| held-out, no-answer AUROC (margin vs. has an answer) | {s["heldout_no_answer_auroc"]:.3f} |
| latency, 4 passages × ~200 word pieces, 2 threads, p50 / p95 | {latency} |

| variant | size | qa-train dev F1 | latency p50 / p95 |
|---|---|---|---|
{variants}

Latencies were measured on the shared machine while other jobs ran; `python bench/reader.py` re-measures.
{_cpus(config)}
## Limits

A small model trained for {config["train_seconds"] / 60:.0f} minutes on CPU: it finds names, places and dates
well, longer or explanatory answers less so. Telling answerable from unanswerable questions is its weak side (the
no-answer AUROC above): when several passages are read, a plausible span of the wrong type in another
passage can outrank the right one. English only. The answer probability is calibrated on SQuAD-style
paragraphs; on other text it is a ranking signal more than a probability.
"""


def write_model_card(model_dir: Path) -> Path:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    path = model_dir / "MODEL_CARD.md"
    path.write_text(render(config), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_model_card(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "model"))
