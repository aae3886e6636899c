"""Stage 5 of 9: running a model. One interface (base.py: `Backend`: a batch of log-mel windows into text, a
recording of any length into timed segments with the long-form guards, a window into timed words for live captions)
with its two implementations, each in one file: transformers (transformers_backend.py) and CTranslate2 exports
through faster-whisper (ctranslate2_backend.py), chosen once by what the folder is (load.py: `load_backend`). Also the
long-form guards (guards.py), the fast CPU attention (cpu_attention.py, enabled explicitly) and the words of a window
(words.py). Evaluation, the export's parity check, the app and live captions run models through it."""
