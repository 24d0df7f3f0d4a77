"""The reader's quantization variants across CPUs (issue #22), as one JSON line per variant, then a summary.

Every variant is built from the shipped model (no retraining) into ``--work``:

- ``u8s8``: int8 weights, as onnxruntime's dynamic quantization writes them (the model shipped before);
- ``u8u8``: the same integers stored unsigned (``training/quantize.py``; the shipped model);
- ``7bit``: the weights re-quantized to 7 bits (``reduce_range``) from their float values;
- ``fp32``: the weights dequantized to float32 (the int8 values), activations not quantized.

Per variant, on this CPU: held-out SQuAD v2 overall F1 / has-answer F1 / no-answer accuracy and qa-train
dev F1 (``--sample`` questions per set, seeded; 0: all), size, latency for 4 passages of ~200 word pieces.
Agreement on fixed questions (the bundled article's, each with its paragraph, plus ``--fixed`` held-out
SQuAD questions), as "same best span" and "same span with probability within 0.01":

- ``vnni_integers``: against its U8U8 twin (the same integers, computed exactly by onnxruntime with this
  CPU's float kernels): what VNNI and AMX compute, less float rounding. Isolates the saturation;
  ``--agreement-only`` measures just this (quick).
- ``exact``: against the same model run with exact integer products (onnx's reference evaluator, integer
  matmuls in float64, float parts in numpy): what AVX-512 VNNI and AMX compute. On an AVX2-only CPU this
  is the other instruction set, with every float operation computed differently too (numpy), so it bounds
  what other float kernels could change; the first ``--exact`` fixed questions only (it is slow).
- ``vnni_answers``: against the u8s8 model's exact answers, i.e. what the reader answered on VNNI/AMX.
- ``qemu``: against this script run under ``qemu-x86_64 -cpu Haswell`` (AVX2, no VNNI) on the first
  ``--qemu`` fixed questions (0: skip). On an AVX2-only CPU both sides are AVX2.
- ``batching``: each bundled question read over every paragraph with all its windows in one call,
  against one call per window (the reader's way): how many best answers and probabilities change.

    python bench/reader_variants.py [--sample 300] [--fixed 20] [--exact 28] [--exact-others 8] [--qemu 2]
        [--batching 8] [--variants u8u8,fp32]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from _common import DATA, ROOT

VARIANTS = ("u8s8", "u8u8", "7bit", "fp32")
BUNDLED = ROOT / "seeds" / "putin-pezeshkian-ashgabat-s400.txt"
# The bundled article's questions, each with a phrase of the paragraph that answers it.
BUNDLED_QUESTIONS = [
    ("When will Putin meet Pezeshkian?", "Ashgabat on Friday"),
    ("Who said Russia wouldn't want to antagonise Israel?", "said Stephen Hall"),
    ("Where are Putin and Pezeshkian meeting?", "Ashgabat on Friday"),
    ("Who is Yury Ushakov?", "Yury Ushakov"),
    ("What has Iran supplied to Russia?", "lethal drones"),
    ("What did Ettelaat demand?", "Ettelaat"),
    ("Which institute do the analysts work for?", "Institute for the Study of War"),
    ("Whose birthday is being celebrated?", "Magtymguly Pyragy"),
]


@dataclass(frozen=True)
class Pair:
    """One fixed question and the passage it is read with."""

    question: str
    passage: str


@dataclass(frozen=True)
class Read:
    """The reader's best span for one pair."""

    text: str
    probability: float


@dataclass(frozen=True)
class Agreement:
    """How many fixed questions got the same best span, and the same span within 0.01 of probability."""

    questions: int
    same_span: int
    within_001: int
    max_probability_gap: float


def paragraphs() -> list[str]:
    blocks = [b.strip() for b in BUNDLED.read_text(encoding="utf-8").split("\n\n")]
    return [b for b in blocks if len(b.split()) > 3]


def fixed_pairs(heldout: list, count: int) -> list[Pair]:
    paras = paragraphs()
    bundled = [Pair(q, next(p for p in paras if phrase in p)) for q, phrase in BUNDLED_QUESTIONS]
    squad = random.Random(22).sample(heldout, count) if count else []
    return bundled + [Pair(ex.question, ex.context) for ex in squad]


# -- building the variants --------------------------------------------------------------------------


def _graph_maps(model):
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {out: node for node in model.graph.node for out in node.output}
    return consumers, producers


def signed(model) -> None:
    """u8u8 -> u8s8: every uint8 integer-matmul weight and zero point back to int8 (minus 128), in place."""
    from onnx import TensorProto, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            continue
        for name in (node.input[1], node.input[3]):
            t = inits[name]
            if t.data_type == TensorProto.UINT8:
                values = numpy_helper.to_array(t).astype(np.int16) - 128
                t.CopyFrom(numpy_helper.from_array(values.astype(np.int8), name))


def dequantized(model) -> None:
    """Each DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul chain becomes a float MatMul, in place.

    The float weight is (w - zero point) x scale: the quantized values, so only the arithmetic changes.
    """
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    consumers, producers = _graph_maps(model)
    drop, add = set(), []
    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            continue
        x = producers[node.input[0]].input[0]
        weight_name = node.input[1]
        cast = consumers[node.output[0]][0]
        mul = consumers[cast.output[0]][0]
        scale_name = weight_name.removesuffix("_quantized") + "_scale"
        q = numpy_helper.to_array(inits[weight_name]).astype(np.float32)
        z = numpy_helper.to_array(inits[node.input[3]]).astype(np.float32)
        w = (q - z) * numpy_helper.to_array(inits[scale_name]).astype(np.float32)
        float_name = weight_name.removesuffix("_quantized") + "_float"
        model.graph.initializer.append(numpy_helper.from_array(w.astype(np.float32), float_name))
        add.append(helper.make_node("MatMul", [x, float_name], [mul.output[0]], name=float_name + "_MatMul"))
        drop |= {id(node), id(cast), id(mul)}
    kept = [n for n in model.graph.node if id(n) not in drop] + add
    del model.graph.node[:]
    model.graph.node.extend(_without_dead_nodes(model, kept))
    used = {name for n in model.graph.node for name in n.input}
    alive = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(alive)


def _without_dead_nodes(model, nodes: list) -> list:
    outputs = {o.name for o in model.graph.output}
    while True:
        used = {name for n in nodes for name in n.input} | outputs
        alive = [n for n in nodes if any(o in used for o in n.output)]
        if len(alive) == len(nodes):
            return _topological(model, alive)
        nodes = alive


def _topological(model, nodes: list) -> list:
    known = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer} | {""}
    out, pending = [], list(nodes)
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or a missing input")
        for n in ready:
            out.append(n)
            known |= set(n.output)
        pending = [n for n in pending if all(n is not r for r in ready)]
    return out


def build(work: Path, names: list[str]) -> dict[str, Path]:
    """A model folder per variant (tokenizer and config beside it); built once, reused after."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from assistant.reading.reader import DEFAULT_MODEL_DIR

    folders = {}
    for name in names:
        folder = work / name
        folders[name] = folder
        if (folder / "model.onnx").is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEFAULT_MODEL_DIR / "tokenizer.json", folder / "tokenizer.json")
        config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
        # Named, so that the Reader loads each as it is (it stores unnamed int8 weights unsigned).
        config["integer_weights"] = {"u8s8": "int8", "7bit": "int8", "fp32": "none"}.get(name, "uint8")
        (folder / "config.json").write_text(json.dumps(config, indent=1))
        model = onnx.load(str(DEFAULT_MODEL_DIR / "model.onnx"))
        if name == "u8s8":
            signed(model)
        elif name in ("fp32", "7bit", "7bit-u8u8"):
            dequantized(model)
        onnx.save(model, str(folder / "model.onnx"))
        if name in ("7bit", "7bit-u8u8"):
            quantize_dynamic(
                folder / "model.onnx",
                folder / "model.onnx",
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
            )
        if name == "7bit-u8u8":
            from assistant.reading.weights import unsigned_weights

            model = onnx.load(str(folder / "model.onnx"))
            unsigned_weights(model)
            onnx.save(model, str(folder / "model.onnx"))
    return folders


# -- running them -----------------------------------------------------------------------------------


class _ExactSession:
    """onnxruntime's ``run`` over onnx's reference evaluator with exact integer matmuls (VNNI/AMX arithmetic)."""

    def __init__(self, path: Path) -> None:
        import onnx
        from onnx.reference import ReferenceEvaluator
        from onnx.reference.op_run import OpRun

        class MatMulInteger(OpRun):
            def _run(self, a, b, a_zero_point=None, b_zero_point=None):
                # float64 holds these sums exactly (< 2**53) and uses BLAS; numpy's int32 matmul does not.
                a = a.astype(np.float64) - (0.0 if a_zero_point is None else a_zero_point.astype(np.float64))
                b = b.astype(np.float64) - (0.0 if b_zero_point is None else b_zero_point.astype(np.float64))
                return (np.matmul(a, b).astype(np.int32),)

        model = onnx.load(str(path))
        for opset in model.opset_import:  # the evaluator has DequantizeLinear from opset 19 on (same semantics)
            if opset.domain in ("", "ai.onnx"):
                opset.version = max(opset.version, 19)
        self._evaluator = ReferenceEvaluator(model, new_ops=[MatMulInteger])

    def run(self, names, feeds):
        return self._evaluator.run(names, feeds)


def make_reader(folder: Path, exact: bool = False, batched: bool = False):
    """The shipped Reader class on ``folder``; ``exact``: reference arithmetic; ``batched``: one call per read."""
    from assistant.reading.reader import Reader
    from assistant.reading.windows import pad_batch

    class VariantReader(Reader):
        def _open_session(self, path):
            return _ExactSession(path) if exact else super()._open_session(path)

        def _score(self, windows):
            if not batched:
                return super()._score(windows)
            start, end = self._session.run(["start_logits", "end_logits"], pad_batch(windows))
            return [self._best_in_window(s, e, w.offsets) for s, e, w in zip(start, end, windows, strict=True)]

    return VariantReader(folder, threads=2)


def read_pairs(reader, pairs: list[Pair]) -> list[Read]:
    out = []
    for pair in pairs:
        result = reader.read(pair.question, [pair.passage])
        out.append(Read(result.best.text if result.best else "", round(result.answer_probability, 6)))
    return out


def agreement(a: list[Read], b: list[Read]) -> Agreement:
    n = min(len(a), len(b))
    same = [x.text == y.text for x, y in zip(a[:n], b[:n], strict=True)]
    gaps = [abs(x.probability - y.probability) for x, y in zip(a[:n], b[:n], strict=True)]
    close = sum(s and g <= 0.01 for s, g in zip(same, gaps, strict=True))
    return Agreement(n, sum(same), close, round(max(gaps, default=0.0), 4))


def emulated(folder: Path, pairs: list[Pair]) -> list[Read]:
    """The same reads under qemu's Haswell CPU (AVX2, no AVX-512, no VNNI)."""
    qemu = shutil.which("qemu-x86_64")
    if not qemu:
        raise SystemExit("qemu-x86_64 is missing: install Debian's qemu-user (make setup-test does)")
    payload = json.dumps([asdict(p) for p in pairs])
    done = subprocess.run(
        [qemu, "-cpu", "Haswell", sys.executable, __file__, "--emit", str(folder)],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
    )
    return [Read(**r) for r in json.loads(done.stdout.strip().splitlines()[-1])]


def batching(folder: Path, questions: int) -> dict:
    """Bundled questions over all paragraphs: all windows in one call against one call per window."""
    one, many = make_reader(folder), make_reader(folder, batched=True)
    paras, changed, gaps, times = paragraphs(), 0, [], {"one_per_call_ms": [], "one_call_ms": []}
    for question, _ in BUNDLED_QUESTIONS[:questions]:
        began = time.perf_counter()
        a = one.read(question, paras)
        times["one_per_call_ms"].append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        b = many.read(question, paras)
        times["one_call_ms"].append((time.perf_counter() - began) * 1000)
        changed += a.best.text != b.best.text
        gaps += [abs(x.probability - y.probability) for x, y in zip(a.spans, b.spans, strict=True)]
    return {
        "questions": min(questions, len(BUNDLED_QUESTIONS)),
        "paragraphs": len(paras),
        "best_answer_changed": changed,
        "max_probability_gap": round(max(gaps), 4),
        "spans_off_by_over_001": sum(g > 0.01 for g in gaps),
        **{k: round(float(np.median(v)), 1) for k, v in times.items()},
    }


def quality(folder: Path, heldout: list, dev: list) -> dict:
    from assistant.evaluation.metrics import f1
    from training.evaluate import latency, predict, squad2_scores

    reader = make_reader(folder)
    reader.warm_up()
    held = squad2_scores(heldout, predict(reader, heldout), reader.threshold)
    dev_f1 = float(np.mean([f1(ex.answers, p.text) for ex, p in zip(dev, predict(reader, dev), strict=True)]))
    p50, p95 = latency(reader, heldout, runs=10)
    return {
        "heldout_overall_f1": round(held["overall_f1"], 4),
        "heldout_has_answer_f1": round(held["has_answer_f1"], 4),
        "heldout_no_answer_accuracy": round(held["no_answer_accuracy"], 4),
        "dev_f1": round(dev_f1, 4),
        "heldout_questions": len(heldout),
        "dev_questions": len(dev),
        "latency_4_passages_p50_ms": round(p50, 1),
        "latency_4_passages_p95_ms": round(p95, 1),
        "model_mb": round((folder / "model.onnx").stat().st_size / 1e6, 1),
    }


def cpu() -> dict:
    """This CPU's model name and the instruction sets that choose onnxruntime's integer kernels."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    flags = set(next((line for line in lines if line.startswith("flags")), "").split())
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    return {"model": model, "isa": sorted(flags & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sample", type=int, default=300, help="held-out and dev questions each (0: all)")
    p.add_argument("--fixed", type=int, default=20, help="held-out SQuAD questions among the fixed ones")
    p.add_argument("--exact", type=int, default=28, help="fixed questions read with exact arithmetic (slow)")
    p.add_argument("--exact-others", type=int, default=8, help="the same for 7bit and fp32 (u8s8 and u8u8 share one)")
    p.add_argument("--batching", type=int, default=len(BUNDLED_QUESTIONS), help="bundled questions read batched")
    p.add_argument("--qemu", type=int, default=2, help="fixed questions read under qemu's Haswell (0: skip)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--agreement-only", action="store_true", help="only the agreement with the exact integers")
    p.add_argument("--work", type=Path, default=ROOT / "build" / "reader-variants")
    p.add_argument("--emit", type=Path, default=None, help=argparse.SUPPRESS)  # the run under qemu
    args = p.parse_args()
    if args.emit:
        pairs = [Pair(**d) for d in json.loads(sys.stdin.read())]
        print(json.dumps([asdict(r) for r in read_pairs(make_reader(args.emit), pairs)]))
        return

    from training.data import load_qa_train, load_squad2

    seed = json.loads((ROOT / "assistant/reading/model/config.json").read_text())["hyperparameters"]["seed"]
    heldout = load_squad2(DATA / "squad-v2-dev", seed=seed).examples["heldout"]
    dev = load_qa_train(DATA / "qa-train" / "dev.jsonl")
    if args.sample:
        heldout = random.Random(1).sample(heldout, min(args.sample, len(heldout)))
        dev = random.Random(2).sample(dev, min(args.sample, len(dev)))
    pairs = fixed_pairs(load_squad2(DATA / "squad-v2-dev", seed=seed).examples["heldout"], args.fixed)
    names = args.variants.split(",")
    folders = build(args.work, sorted(set(names) | {"u8s8"}))
    vnni = read_pairs(make_reader(folders["u8s8"], exact=True), pairs[: 0 if args.agreement_only else args.exact])
    summary = {"bench": "reader_variants", "cpu": cpu(), "fixed_questions": len(pairs)}
    summary["vnni_answers"] = {f"{p.question} | {p.passage[:40]}": asdict(r) for p, r in zip(pairs, vnni, strict=False)}
    twins = build(args.work, ["u8u8", "7bit-u8u8"])
    twin_of = {"u8s8": twins["u8u8"], "7bit": twins["7bit-u8u8"]}
    for name in names:
        here = read_pairs(make_reader(folders[name]), pairs)
        # The same integers computed exactly by onnxruntime itself (the U8U8 twin), with this CPU's float
        # kernels: what a VNNI or AMX CPU computes, less the float kernels' rounding. u8u8 and fp32 are their
        # own twins: no integer product of theirs depends on the CPU.
        twin = read_pairs(make_reader(twin_of[name]), pairs) if name in twin_of else here
        line = {"variant": name, "agreement_vnni_integers": asdict(agreement(here, twin))}
        if args.agreement_only:
            print(json.dumps(line | {"bundled": [asdict(r) for r in here[: len(BUNDLED_QUESTIONS)]]}), flush=True)
            continue
        line |= quality(folders[name], heldout, dev)
        exact = (
            vnni
            if name in ("u8s8", "u8u8")
            else read_pairs(make_reader(folders[name], exact=True), pairs[: args.exact_others])
        )
        line["agreement_exact"] = asdict(agreement(here, exact))
        line["agreement_vnni_answers"] = asdict(agreement(here, vnni))
        if args.qemu:
            line["agreement_qemu_haswell"] = asdict(agreement(here, emulated(folders[name], pairs[: args.qemu])))
        line["batching"] = batching(folders[name], args.batching)
        line["bundled"] = [asdict(r) for r in here[: len(BUNDLED_QUESTIONS)]]
        print(json.dumps(line), flush=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
