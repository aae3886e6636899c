"""Stage 1 of 8: data sources as streams of rows (no audio decoded), "+" mixing across datasets and processes, and
audio decoding."""
