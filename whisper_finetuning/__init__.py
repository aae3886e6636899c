"""Fine-tune, evaluate and use OpenAI Whisper. The folders are the stages of the pipeline, in order (each imports
only the stages before it; tests/unit/test_layout.py checks it):

    1 data/          rows from Common Voice, FLEURS, audiofolders, manifests or the Hub; "+" mixing; audio decoding
    2 augmentation/  on-the-fly waveform augmentation of training audio (noise, speed, rooms, ...), seeded per sample
    3 features/      rows -> log-mel features and labels (filters, counts), and the feature cache
    4 training/      model set-up, the resumable training stream, the Trainer, checkpoints, the model card
    5 backends/      running a model: transformers or a CTranslate2 export, chosen by the folder; long-form guards,
                     fast CPU attention
    6 evaluation/    batched transcription, scoring, reports, the leaderboard's test sets
    7 export/        LoRA merge, CTranslate2 and whisper.cpp exports with a WER-parity check
    8 inference/     using a model: long recordings, audio and stream input, live captions, subtitles
    9 app/           the Gradio app

Shared by the stages: args.py (arguments), loading.py (load a checkpoint), metrics.py (WER/CER), cards.py
(model-index), files.py (atomic writes). Support: offline/ (pretrained weights from PyPI without the Hub),
synthetic/ (speech synthesis and the synthetic corpus). Entry points: run_speech_recognition_seq2seq_streaming.py
and run_eval.py at the top of the repository; here demo.py, quickstart.py, compare.py, live_captions.py and
search/ (which may use every stage), and the commands of the stages (python -m whisper_finetuning.export, .app, ...).
docs/layout.md names every module file.
"""
