"""Stage 3 of 9: rows -> model inputs (decode, filter, log-mel, tokenize, with counted skips), and the feature cache
that stores them once."""
