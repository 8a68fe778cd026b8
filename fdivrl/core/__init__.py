"""The math: f-divergences, their closed forms, the numerical check and its report. No I/O."""
