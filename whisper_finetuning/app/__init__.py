"""Stage 9 of 9: the web app (`python -m whisper_finetuning.app --model_name_or_path PATH_OR_ID`): transcribe an uploaded file or a
microphone recording, caption the microphone live, caption a stream URL as audio arrives; subtitles to download.
captions.py renders text for the page, sessions.py runs live microphone captions, handlers.py answers the page's
events, ui.py lays the page out."""
