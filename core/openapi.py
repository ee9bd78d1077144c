"""Print the OpenAPI document (the frontend generates its typed client from it)."""

from __future__ import annotations

import json
import sys
import tempfile

from api.app import create_app
from core.settings import Settings


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(home=home), run_sweeper=False)
        json.dump(app.openapi(), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
