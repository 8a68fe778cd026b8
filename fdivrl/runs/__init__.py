"""Run directories: atomic files, the lock, checkpoints, logs and loggers."""
