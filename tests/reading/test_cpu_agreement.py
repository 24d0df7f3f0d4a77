"""The reader computes the same thing on every x86 CPU (issue #22).

int8 weights (U8S8) made AVX2-only CPUs saturate 16-bit sums that VNNI and AMX CPUs compute exactly, and
the reader answered differently there. The shipped weights are unsigned (U8U8 kernels, exact everywhere);
these tests check that structurally, on a model built to saturate, and by running the shipped model
natively and under ``qemu-x86_64 -cpu Haswell`` (an AVX2-only CPU without VNNI).
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from assistant.reading import Reader
from assistant.reading.reader import DEFAULT_MODEL_DIR
from training.quantize import quantize_int8, signed_weights

PROBE = Path(__file__).resolve().parent / "logits_probe.py"
QEMU = "qemu-x86_64"


def _integer_inputs(model: onnx.ModelProto) -> dict[str, int]:
    """Data type of every initializer that an integer matmul or a dequantization reads as its weight."""
    inits = {t.name: t.data_type for t in model.graph.initializer}
    slots = {"MatMulInteger": (1, 3), "ConvInteger": (1, 3), "DequantizeLinear": (0, 2)}
    return {
        node.input[i]: inits[node.input[i]]
        for node in model.graph.node
        for i in slots.get(node.op_type, ())
        if len(node.input) > i and node.input[i] in inits
    }


def test_every_integer_weight_of_the_shipped_reader_is_unsigned():
    model = onnx.load(str(DEFAULT_MODEL_DIR / "model.onnx"))
    weights = _integer_inputs(model)
    assert sum(node.op_type == "MatMulInteger" for node in model.graph.node) >= 36  # 6 layers x 6 + the head
    assert len(weights) >= 2 * 36
    assert {name: TensorProto.DataType.Name(t) for name, t in weights.items() if t != TensorProto.UINT8} == {}
    assert signed_weights(model) == []


def _saturating_model(path: Path) -> np.ndarray:
    """A float MatMul whose int8 quantization overflows 16-bit pair sums; returns its float weight."""
    rng = np.random.default_rng(7)
    weight = np.where(rng.random((64, 16)) < 0.5, -1.0, 1.0).astype(np.float32)  # every weight quantizes to ±127
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "saturating",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])],
        [numpy_helper.from_array(weight, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return weight


def test_quantized_weights_are_unsigned_and_compute_exact_integer_products(tmp_path):
    weight = _saturating_model(tmp_path / "fp32.onnx")
    quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    model = onnx.load(str(tmp_path / "int8.onnx"))
    assert set(_integer_inputs(model).values()) == {TensorProto.UINT8}
    # Activations near the top of their range (uint8 ~255) times weights of ±127: on AVX2 a U8S8 kernel
    # adds two products of ~32,000 into a saturating 16-bit sum; U8U8 must give the exact result.
    x = np.tile(np.linspace(-0.05, 4.0, 64, dtype=np.float32), (3, 1))
    x[1] *= 0.5
    (y,) = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    scale = np.float32(x.max(axis=None) - min(0.0, x.min())) / 255  # one dynamic activation scale per call
    zero = np.rint(-min(0.0, x.min()) / scale)
    xq = np.clip(np.rint(x / scale) + zero, 0, 255) - zero
    w_scale = np.abs(weight).max(axis=0) / 127
    exact = (xq.astype(np.float64) @ np.rint(weight / w_scale)) * scale * w_scale
    np.testing.assert_allclose(y, exact, rtol=1e-5, atol=1e-4)


def test_a_model_quantized_before_with_int8_weights_reads_like_the_shipped_one(tmp_path):
    """A reader folder from before issue #22 (int8 weights, config silent about them) is made unsigned on load."""
    model = onnx.load(str(DEFAULT_MODEL_DIR / "model.onnx"))
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "MatMulInteger":
            for name in (node.input[1], node.input[3]):
                values = numpy_helper.to_array(inits[name]).astype(np.int16) - 128
                inits[name].CopyFrom(numpy_helper.from_array(values.astype(np.int8), name))
    assert signed_weights(model)
    onnx.save(model, str(tmp_path / "model.onnx"))
    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    del config["integer_weights"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    shutil.copy(DEFAULT_MODEL_DIR / "tokenizer.json", tmp_path / "tokenizer.json")
    article = (Path(__file__).resolve().parents[2] / "seeds" / "putin-pezeshkian-ashgabat-s400.txt").read_text()
    paragraphs = [b.strip() for b in article.split("\n\n") if len(b.split()) > 3]
    old, shipped = Reader(tmp_path), Reader()
    for question in ("When will Putin meet Pezeshkian?", "Who said Russia wouldn't want to antagonise Israel?"):
        assert old.read(question, paragraphs) == shipped.read(question, paragraphs)
    assert old.read("When will Putin meet Pezeshkian?", paragraphs).best.text == "Friday"


def _cpu_has_avx2() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx2" in flags


@pytest.mark.skipif(not _cpu_has_avx2(), reason="needs an x86-64 CPU with AVX2 to run the Haswell emulation against")
def test_logits_natively_and_on_an_emulated_avx2_only_cpu_agree(tmp_path):
    """Native (VNNI, AMX or AVX2, whatever this CPU has) against qemu's Haswell: AVX2 without VNNI.

    The issue's bar: the same best span and an answer probability within 0.01; and no logit off by 0.1.
    """
    qemu = shutil.which(QEMU)
    assert qemu, f"{QEMU} is missing: install Debian's qemu-user (`make setup-test` does)"
    native = json.loads(_probe([sys.executable]))
    emulated = json.loads(_probe([qemu, "-cpu", "Haswell", sys.executable]))
    assert [p["question"] for p in emulated] == [p["question"] for p in native]
    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    for here, there in zip(native, emulated, strict=True):
        span, probability = _best_span(here, config)
        assert _best_span(there, config)[0] == span, here["question"]
        assert abs(_best_span(there, config)[1] - probability) <= 0.01, here["question"]
        for key in ("start", "end"):
            gap = float(np.abs(np.array(here[key]) - np.array(there[key])).max())
            assert gap < 0.1, (here["question"], key, gap)


def _best_span(window: dict, config: dict) -> tuple[tuple[int, int], float]:
    """The reader's best span of a window (at most 30 word pieces of the passage) and its answer probability."""
    start, end = np.array(window["start"], dtype=np.float64), np.array(window["end"], dtype=np.float64)
    passage = np.array(window["passage"])
    i, j = np.indices((len(start), len(start)))
    allowed = (j >= i) & (j - i < 30) & passage[:, None] & passage[None, :]
    scores = np.where(allowed, start[:, None] + end[None, :], -np.inf)
    s, e = divmod(int(np.argmax(scores)), len(start))
    margin = scores[s, e] - (start[0] + end[0])
    cal = config["calibration"]
    return (s, e), float(1 / (1 + np.exp(-(cal["scale"] * margin + cal["bias"]))))


def _probe(prefix: list[str]) -> str:
    done = subprocess.run(
        [*prefix, str(PROBE), str(DEFAULT_MODEL_DIR)], capture_output=True, text=True, timeout=1800, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
