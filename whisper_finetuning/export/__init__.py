"""Stage 6 of 8: from a fine-tuned model to deployment: the model an export starts from, loaded and checked
(checkpoint), merging a LoRA adapter into a plain checkpoint (merge), export to CTranslate2 / faster-whisper
(ctranslate2) and whisper.cpp (ggml) with a WER-parity check against the trained model (parity; the command is
`python -m whisper_finetuning.export`), and a batched CTranslate2 transcriber that evaluates the export exactly as it
will be deployed (ct2_transcriber)."""
