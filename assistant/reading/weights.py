"""Integer weights stored unsigned, so that onnxruntime computes the same integers on every x86 CPU (issue #22).

onnxruntime's dynamic quantization stores weights as int8 (U8S8: uint8 activations times int8
weights). CPUs without AVX-512 VNNI or AMX run U8S8 with ``vpmaddubsw``, whose 16-bit sums of two
products saturate, so an AVX2-only CPU computed other integers than a VNNI or AMX one and the reader
gave other answers there ("today" instead of "Friday" on the bundled article). Stored as uint8 (the
same integers plus 128, zero points plus 128: ``(w + 128) - (z + 128) == w - z``), the weights make
onnxruntime pick its U8U8 kernels, which widen to 16 bits before multiplying and never saturate, so
every CPU computes the exact integer products, the ones VNNI and AMX computed before.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

# Op type -> (integer weight input, its zero-point input): the inputs whose int8 initializers are shifted.
_WEIGHT_INPUTS = {"MatMulInteger": (1, 3), "ConvInteger": (1, 3), "DequantizeLinear": (0, 2)}


def unsigned_weights(model: onnx.ModelProto) -> int:
    """Store every int8 weight (and its zero point) of ``model`` as uint8, in place; returns how many.

    Raises ValueError when an int8 initializer is also read by a node this rewrite does not know, where
    shifting it would change what the model computes.
    """
    inits = {t.name: t for t in model.graph.initializer}
    pairs: dict[str, str | None] = {}
    readers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
        if node.op_type not in _WEIGHT_INPUTS:
            continue
        w, z = _WEIGHT_INPUTS[node.op_type]
        weight = node.input[w] if len(node.input) > w else ""
        if weight not in inits or inits[weight].data_type != TensorProto.INT8:
            continue
        zero = node.input[z] if len(node.input) > z and node.input[z] else None
        if zero is None:  # a missing zero point is 0: it becomes an explicit 128
            zero = _add_zero_point(model, node, z, weight, inits)
        pairs[weight] = zero
    shifted = {name for pair in pairs.items() for name in pair if name}
    for name in shifted:
        if inits[name].data_type != TensorProto.INT8:
            raise ValueError(f"{name}: zero point is {TensorProto.DataType.Name(inits[name].data_type)}, not INT8")
        others = readers.get(name, set()) - set(_WEIGHT_INPUTS)
        if others:
            raise ValueError(f"{name} is also read by {sorted(others)}: cannot store it unsigned")
        tensor = inits[name]
        values = numpy_helper.to_array(tensor).astype(np.int16) + 128
        tensor.CopyFrom(numpy_helper.from_array(values.astype(np.uint8), name))
    return len(pairs)


def _add_zero_point(model: onnx.ModelProto, node, index: int, weight: str, inits: dict) -> str:
    name = f"{weight}_zero_point_int8"
    if name not in inits:
        tensor = numpy_helper.from_array(np.zeros((), dtype=np.int8), name)
        model.graph.initializer.append(tensor)
        inits[name] = model.graph.initializer[-1]
    inputs = list(node.input) + [""] * (index + 1 - len(node.input))
    inputs[index] = name
    del node.input[:]
    node.input.extend(inputs)
    return name


def signed_weights(model: onnx.ModelProto) -> list[str]:
    """Names of the int8 initializers left in ``model`` (empty for a converted model)."""
    return [t.name for t in model.graph.initializer if t.data_type == TensorProto.INT8]
