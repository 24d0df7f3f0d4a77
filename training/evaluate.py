"""Gold-context scores of a reader model: calibration, SQuAD v2 metrics, latency; and the end of training.

Used by ``bench/reader.py`` and by ``train.py`` (which calibrates both ONNX variants, scores them and
ships one). Calibration uses the two SQuAD v2 calibration articles only; the held-out articles are
never used for any choice.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from assistant.evaluation.metrics import auroc, exact_match, f1
from assistant.generation.decline import Thresholds
from assistant.reading.reader import Reader
from training.data import QAExample, load_qa_train, load_squad2
from training.quantize import quantize_int8


@dataclass(frozen=True)
class Prediction:
    """The reader's best span for one example and its answer probability."""

    text: str
    probability: float
    margin: float


@dataclass(frozen=True)
class Scores:
    """Gold-context scores (fractions in 0..1; latency in ms)."""

    dev_em: float
    dev_f1: float
    heldout_has_answer_f1: float
    heldout_has_answer_f1_best_span: float
    heldout_no_answer_accuracy: float
    heldout_overall_f1: float
    heldout_overall_em: float
    heldout_no_answer_auroc: float
    heldout_questions: int
    dev_questions: int
    threshold: float
    latency_p50_ms: float
    latency_p95_ms: float


def predict(reader: Reader, examples: list[QAExample]) -> list[Prediction]:
    out = []
    for ex in examples:
        result = reader.read(ex.question, [ex.context])
        best = result.best
        margin = best.score - best.null_score if best else -1e9
        out.append(Prediction(best.text if best else "", result.answer_probability, margin))
    return out


def fit_calibration(margins: list[float], has_answer: list[bool]) -> tuple[float, float]:
    """1-D logistic regression (Newton steps, light L2) of "has an answer" on the span-vs-[CLS] margin."""
    x = np.stack([np.asarray(margins, dtype=np.float64), np.ones(len(margins))], axis=1)
    y = np.asarray(has_answer, dtype=np.float64)
    w = np.zeros(2)  # IRLS from zero: from a steep start the Newton steps can overshoot and diverge
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (p - y) + 1e-3 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-3 * np.eye(2)
        w = np.clip(w - np.linalg.solve(hess, grad), -50, 50)  # bounded if the classes separate
    return float(w[0]), float(w[1])


def best_threshold(examples: list[QAExample], preds: list[Prediction]) -> float:
    """The probability threshold that maximises overall F1 (answer vs. "no answer") on these examples."""
    gain = [f1(ex.answers, p.text) for ex, p in zip(examples, preds, strict=True)]
    null = [float(not ex.answers) for ex in examples]
    best, best_score = 0.5, -1.0
    for t in sorted({round(p.probability, 3) for p in preds} | {0.5}):
        score = sum(g if p.probability >= t else n for g, n, p in zip(gain, null, preds, strict=True))
        if score > best_score + 1e-9:
            best, best_score = t, score
    return best


def squad2_scores(examples: list[QAExample], preds: list[Prediction], threshold: float) -> dict[str, float]:
    answered = [p.text if p.probability >= threshold else "" for p in preds]
    has = [bool(ex.answers) for ex in examples]
    f1s = [f1(ex.answers, a) for ex, a in zip(examples, answered, strict=True)]
    ems = [exact_match(ex.answers, a) for ex, a in zip(examples, answered, strict=True)]
    return {
        "has_answer_f1": statistics.fmean(s for s, h in zip(f1s, has, strict=True) if h),
        "has_answer_f1_best_span": statistics.fmean(
            f1(ex.answers, p.text) for ex, p in zip(examples, preds, strict=True) if ex.answers
        ),
        "no_answer_accuracy": statistics.fmean(s for s, h in zip(f1s, has, strict=True) if not h),
        "overall_f1": statistics.fmean(f1s),
        "overall_em": statistics.fmean(ems),
        "auroc": auroc([p.margin for p in preds], has),
    }


def latency(reader: Reader, examples: list[QAExample], runs: int = 30) -> tuple[float, float]:
    """p50/p95 ms of reading 4 passages of ~200 word pieces (the held-out paragraphs nearest that length)."""
    tok_len = {ex.context: len(ex.context.split()) * 1.3 for ex in examples}
    paragraphs = sorted(tok_len, key=lambda c: abs(tok_len[c] - 200))[:4]
    questions = [ex.question for ex in examples[:runs]]
    reader.read(questions[0], paragraphs)
    times = []
    for q in questions:
        began = time.perf_counter()
        reader.read(q, paragraphs)
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]


def dev_scores(reader: Reader, data: Path, limit: int = 0) -> tuple[float, float, int]:
    """EM, F1 and count on qa-train dev (every question has an answer, so the best span is always given)."""
    dev = load_qa_train(data / "qa-train" / "dev.jsonl")[: limit or None]
    preds = [p.text for p in predict(reader, dev)]
    em = statistics.fmean(exact_match(ex.answers, p) for ex, p in zip(dev, preds, strict=True))
    return em, statistics.fmean(f1(ex.answers, p) for ex, p in zip(dev, preds, strict=True)), len(dev)


def score_model(reader: Reader, data: Path, seed: int, limit: int = 0) -> Scores:
    """All gold-context scores of a calibrated model folder."""
    heldout = load_squad2(data / "squad-v2-dev", seed=seed).examples["heldout"][: limit or None]
    reader.warm_up()
    dev_em, dev_f1, dev_n = dev_scores(reader, data, limit)
    threshold = float(json.loads((reader.model_dir / "config.json").read_text())["threshold"])
    held = squad2_scores(heldout, predict(reader, heldout), threshold)
    p50, p95 = latency(reader, heldout, runs=5 if limit else 30)
    return Scores(
        dev_em=dev_em,
        dev_f1=dev_f1,
        heldout_has_answer_f1=held["has_answer_f1"],
        heldout_has_answer_f1_best_span=held["has_answer_f1_best_span"],
        heldout_no_answer_accuracy=held["no_answer_accuracy"],
        heldout_overall_f1=held["overall_f1"],
        heldout_overall_em=held["overall_em"],
        heldout_no_answer_auroc=held["auroc"],
        heldout_questions=len(heldout),
        dev_questions=dev_n,
        threshold=threshold,
        latency_p50_ms=round(p50, 1),
        latency_p95_ms=round(p95, 1),
    )


def calibrate(folder: Path, data: Path, seed: int, limit: int = 0) -> dict:
    """Fit the probability calibration and threshold on the calibration articles; write them to config.json."""
    calib = load_squad2(data / "squad-v2-dev", seed=seed).examples["calibration"][: limit or None]
    preds = predict(Reader(folder, threads=2), calib)
    scale, bias = fit_calibration([p.margin for p in preds], [bool(ex.answers) for ex in calib])
    z = np.clip(scale * np.array([p.margin for p in preds]) + bias, -50, 50)
    calibrated = [Prediction(p.text, float(1 / (1 + np.exp(-zi))), p.margin) for p, zi in zip(preds, z, strict=True)]
    config = json.loads((folder / "config.json").read_text())
    config["calibration"] = {"scale": scale, "bias": bias, "fitted_on": "SQuAD v2 calibration articles"}
    config["threshold"] = best_threshold(calib, calibrated)
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return config


def _variant(args, name: str, tokenizer_json: Path, meta: dict) -> Path:
    """A calibrated model folder for one variant (fp32 as exported, or int8 with unsigned weights: quantize.py)."""
    folder = args.work / name
    folder.mkdir(parents=True, exist_ok=True)
    if name == "fp32":
        shutil.copy(args.work / "model-fp32.onnx", folder / "model.onnx")
    else:
        quantize_int8(args.work / "model-fp32.onnx", folder / "model.onnx")
    shutil.copy(tokenizer_json, folder / "tokenizer.json")
    meta = meta | ({"integer_weights": "uint8"} if name == "int8" else {})
    (folder / "config.json").write_text(json.dumps(meta, indent=1))
    calibrate(folder, args.data, args.seed, args.eval_limit)
    return folder


def cpu_kind() -> str:
    """This CPU's name and the instruction set that onnxruntime's int8 kernels use on it (for the model card)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    flags = set(next((line for line in lines if line.startswith("flags")), "").split())
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
    isa = next(
        (
            label
            for flag, label in (
                ("amx_int8", "AMX"),
                ("avx512_vnni", "AVX-512 VNNI"),
                ("avx_vnni", "AVX-VNNI"),
                ("avx512bw", "AVX-512, no VNNI"),
                ("avx2", "AVX2 only, no VNNI"),
            )
            if flag in flags
        ),
        "no AVX2",
    )
    return f"{name} ({isa})"


def finish(args, tokenizer_json: Path, meta: dict) -> None:
    """Ship int8 unless it loses > 2 F1 points to fp32 on qa-train dev; full scores for the shipped one.

    The choice uses the validation set (qa-train dev), not the held-out articles; fp32 is only scored
    there (and timed), to keep the end of training short on a shared CPU.
    """
    folders = {name: _variant(args, name, tokenizer_json, meta) for name in ("int8", "fp32")}
    quick = {}
    for name, folder in folders.items():
        reader = Reader(folder, threads=2)
        em, dev_f1, _ = dev_scores(reader, args.data, args.eval_limit)
        heldout = load_squad2(args.data / "squad-v2-dev", seed=args.seed).examples["heldout"]
        p50, p95 = latency(reader, heldout, runs=5 if args.eval_limit else 20)
        size = round((folder / "model.onnx").stat().st_size / 1e6, 1)
        quick[name] = {"dev_em": em, "dev_f1": dev_f1, "latency_p50_ms": p50, "latency_p95_ms": p95, "model_mb": size}
        print(json.dumps({name: quick[name]}), flush=True)
    chosen = "int8" if quick["fp32"]["dev_f1"] - quick["int8"]["dev_f1"] <= 0.02 else "fp32"
    scores = asdict(score_model(Reader(folders[chosen], threads=2), args.data, args.seed, args.eval_limit))
    print(json.dumps({"shipped": chosen, "scores": scores}), flush=True)
    config = json.loads((folders[chosen] / "config.json").read_text())
    config |= {"variant": chosen, "variants": quick, "scores": scores}
    config["cpus"] = [
        {
            "cpu": cpu_kind(),
            "weights": "uint8 (U8U8)" if chosen == "int8" else "float32",
            **{k: scores[k] for k in ("heldout_overall_f1", "heldout_has_answer_f1", "heldout_no_answer_accuracy")},
            "dev_f1": scores["dev_f1"],
            "note": "training run, full sets",
        }
    ]
    # The answering thresholds travel with the model (generation/decline.py); a new model starts with the
    # shipped ones until `bench/calibrate_reader.py --model DIR --write` chooses its own through the pipeline.
    config.setdefault("thresholds", asdict(Thresholds()))
    args.out.mkdir(parents=True, exist_ok=True)
    for file in ("model.onnx", "tokenizer.json"):
        shutil.copy(folders[chosen] / file, args.out / file)
    (args.out / "config.json").write_text(json.dumps(config, indent=1))
    from training.card import write_model_card

    print(json.dumps({"out": str(args.out), "card": str(write_model_card(args.out))}), flush=True)
