"""What every benchmark needs: the project on sys.path, offline env vars, the shared data folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ../shared/data beside the checkout (as laid out for developers and CI); override with BENCH_DATA.
DATA = Path(os.environ.get("BENCH_DATA") or ROOT.parent / "shared" / "data")
ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
for _key, _value in ENV.items():
    os.environ.setdefault(_key, _value)
