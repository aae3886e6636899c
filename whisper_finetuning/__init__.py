"""Fine-tune, evaluate and use OpenAI Whisper. The folders are the stages of the pipeline, in order:

    data/        rows from Common Voice, FLEURS, audiofolders, manifests or the Hub; "+" mixing; audio decoding
    features/    rows -> log-mel features and labels (filters, counts), and the feature cache
    training/    model set-up, the resumable training stream, the Trainer, checkpoints, the model card
    evaluation/  batched transcription, scoring, reports, the leaderboard's test sets, fast CPU attention

Shared by the stages: args.py (arguments), loading.py (load a checkpoint), metrics.py (WER/CER), cards.py
(model-index), files.py (atomic writes). Support: offline/ (pretrained weights from PyPI without the Hub),
synthetic/ (speech synthesis and the synthetic corpus). Entry points: run_speech_recognition_seq2seq_streaming.py
and run_eval.py at the top of the repository, and demo.py / quickstart.py here.
"""
