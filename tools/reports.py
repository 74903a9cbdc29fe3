"""Writing a benchmark's JSON report (every ``tools/bench_*`` ends with one)."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path, report, indent: int = 2) -> Path:
    """``report`` as JSON at ``path`` (parent folders made; values JSON lacks written with ``str``)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=indent, default=str))
    return out
