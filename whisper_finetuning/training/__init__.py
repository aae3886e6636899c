"""Stage 4 of 9: fine-tuning. The entry point run_speech_recognition_seq2seq_streaming.py reads top to bottom:
arguments -> model_setup -> stream -> trainer (with checkpoints) -> model_card."""
