"""Stage 6 of 9: evaluation, used by run_eval.py: the leaderboard test sets, batched transcription of rows with a
backend (backends/), scoring and reports."""
