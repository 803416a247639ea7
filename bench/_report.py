"""How every benchmark hands over its figures: JSON on stdout and in bench/results/."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def report(result: dict[str, Any], path: Path) -> int:
    """Write ``result`` as JSON to ``path`` and to stdout; the exit code of a benchmark."""
    text = json.dumps(result, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0
