"""Stage 7 of 8: using a model. Load a checkpoint once (model.py), transcribe one window into timed words (words.py)
or a whole recording (long_audio.py), the same two calls for CTranslate2 exports through faster-whisper
(ctranslate2_backend.py), read audio from files, URLs, HLS and Icecast (audio_input.py), caption a live stream
(streaming.py: LocalAgreement-2 in agreement.py, voice activity in vad.py, hallucination guards in guards.py; drivers
in live.py and replay.py), and write subtitles (subtitles.py)."""
