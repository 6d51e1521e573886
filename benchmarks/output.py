"""How a benchmark shows its result: an aligned two-column table for a person, or one JSON
object (``--json``) for a script."""

from __future__ import annotations

import json
from typing import Any


def print_result(result: dict[str, Any], as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max(len(name) for name in result)
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")
