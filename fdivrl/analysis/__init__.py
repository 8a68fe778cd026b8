"""Results: reading runs, statistics, compare, bench and plots."""
