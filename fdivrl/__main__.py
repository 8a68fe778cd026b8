"""`python -m fdivrl ...` runs the command line."""

from fdivrl.cli import main

main()
