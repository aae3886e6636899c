"""Stage 7 of 9: from a fine-tuned model to deployment: the model an export starts from, loaded and checked
(checkpoint), merging a LoRA adapter into a plain checkpoint (merge), export to CTranslate2 / faster-whisper
(ctranslate2; run by backends/ctranslate2_backend.py) and whisper.cpp (ggml) with a WER-parity check against the
trained model (parity; the command is `python -m whisper_finetuning.export`)."""
