"""int8 quantization of the exported reader, with its integer weights stored unsigned (issue #22).

See ``assistant/reading/weights.py`` for why: int8 weights saturate on AVX2-only CPUs, uint8 ones never.

    python -m training.quantize MODEL.onnx [--out OUT.onnx]   # convert a model quantized before (in place)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import onnx

from assistant.reading.weights import signed_weights, unsigned_weights

__all__ = ["convert_file", "quantize_int8", "signed_weights", "unsigned_weights"]


def quantize_int8(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantization (per-channel weight scales) with unsigned weights, written to ``out``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel weight scales: per-tensor int8 lost 2.9 F1 points on qa-train dev, per-channel 0.6.
    quantize_dynamic(fp32, out, weight_type=QuantType.QInt8, per_channel=True)
    convert_file(out, out)


def convert_file(src: Path, dst: Path) -> int:
    """:func:`unsigned_weights` on a model file; ``dst`` may be ``src``."""
    model = onnx.load(str(src))
    count = unsigned_weights(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return count


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="an int8 ONNX model (dynamic quantization)")
    p.add_argument("--out", type=Path, default=None, help="where to write it (default: in place)")
    args = p.parse_args(argv)
    out = args.out or args.model
    count = convert_file(args.model, out)
    print(json.dumps({"model": str(out), "weights_made_unsigned": count}))


if __name__ == "__main__":
    main()
