"""Stage 8 of 9: using a model loaded once with its backend (backends.load_backend: a checkpoint, or a CTranslate2
export through faster-whisper). Transcribe a whole recording into segments (long_audio.py), read audio from files,
URLs, HLS and Icecast (audio_input.py), caption a live stream (streaming.py: LocalAgreement-2 in agreement.py, voice
activity in vad.py, hallucination guards in guards.py; drivers in live.py and replay.py), and write subtitles
(subtitles.py)."""
