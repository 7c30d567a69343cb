"""Allow ``python -m weatherstream``."""

from weatherstream.cli import main

main()
