"""Print the OpenAPI document (the frontend generates its typed client from it):
`python -m cli.openapi > frontend/openapi.json`."""

from __future__ import annotations

import json
import sys
import tempfile

from api.app import create_app
from core.settings import Settings


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(home=home), run_sweeper=False)
        # Key order is kept: forms list fields in the order the models declare them.
        json.dump(app.openapi(), sys.stdout, indent=2)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
