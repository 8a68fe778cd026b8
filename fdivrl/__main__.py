"""`python -m fdivrl ...` runs the command line."""

from fdivrl.cli.app import main

main()
