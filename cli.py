"""Run fdivrl from a checkout: `python cli.py --help`."""

from fdivrl.cli import main

main()
