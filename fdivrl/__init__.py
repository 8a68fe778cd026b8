"""fdivrl: f-divergence regularized experience replay, from the command line."""

__version__ = "0.1.0"
