"""Stage 5 of 8: evaluation, used by run_eval.py: the leaderboard test sets, batched transcription (with fast CPU
attention, enabled explicitly), scoring and reports."""
