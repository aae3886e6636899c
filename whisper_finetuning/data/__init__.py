"""Stage 1 of 9: data sources as streams of rows (no audio decoded), "+" mixing across datasets and processes, and
audio decoding."""
