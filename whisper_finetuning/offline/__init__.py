"""Support: pretrained Whisper without the Hub. CTranslate2 copies from PyPI are read (ct2_reader), converted to
Hugging Face checkpoints (convert) and found by model id (resolver). `python -m whisper_finetuning.offline`."""
