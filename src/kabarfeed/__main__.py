"""``python -m kabarfeed`` runs the command line."""

from kabarfeed.cli import main

main()
