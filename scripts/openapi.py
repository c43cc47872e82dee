"""Write the REST face's OpenAPI document to docs/openapi.json (``make openapi``); a test keeps it current.

python scripts/openapi.py [--check]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from moviola.rest import app as rest_app

TARGET = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def document() -> str:
    _, app = rest_app.build(None, None)  # type: ignore[arg-type]
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    text = document()
    if "--check" in sys.argv:
        if TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python scripts/openapi.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
