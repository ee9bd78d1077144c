"""`python -m cli` runs the `expunge` command (tests and benches start it this way)."""

from cli import main

main()
