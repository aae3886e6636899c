"""The page: three tabs (file, microphone, stream URL) around one loaded model."""

import gradio as gr

from ..inference.audio_input import format_duration
from .handlers import DETECT, Handlers


def language_choices(loaded) -> list[tuple[str, str]]:
    from normalizers import get_language

    choices = [(f"{get_language(code).name} ({code})", code) for code in loaded.languages()]
    return ([("detect the language", DETECT)] if loaded.is_multilingual else []) + choices


def language_and_task(loaded, default_language: str | None):
    """A language dropdown and a task choice (translation only exists in multilingual models)."""
    choices = language_choices(loaded)
    value = default_language if default_language in {code for _, code in choices} else choices[0][1]
    language = gr.Dropdown(choices, value=value, label="Language")
    task = gr.Radio(["transcribe", "translate"], value="transcribe", label="Task", visible=loaded.is_multilingual)
    return language, task


def file_outputs():
    transcript = gr.Textbox(label="Transcript (with timestamps)", lines=10, elem_id="transcript")
    with gr.Row():
        srt = gr.File(label="SRT", elem_id="srt-file")
        vtt = gr.File(label="WebVTT", elem_id="vtt-file")
    return transcript, srt, vtt


def prompt_box(elem_id: str):
    """Text the model reads before the recording, as if it had just heard it (Whisper's initial prompt)."""
    return gr.Textbox(label="Prompt (optional): names, domain words or a spelling for the model to follow",
                      placeholder="e.g. Karolinska institutet, Tandläkaren, kvantdator", lines=1, elem_id=elem_id)


def build_demo(handlers: Handlers, default_language: str | None = None, max_streams: int = 2) -> gr.Blocks:
    loaded = handlers.loaded
    with gr.Blocks(title="Whisper transcription", analytics_enabled=False) as demo:
        gr.Markdown(f"## Whisper transcription · `{loaded.name_or_path}`\nFiles up to "
                    f"{format_duration(handlers.max_audio_seconds)}; live captions commit a word once two "
                    f"transcriptions agree on it (grey italics: not final yet).")
        with gr.Tabs():
            with gr.Tab("File", id="file"):
                upload = gr.Audio(sources=["upload"], type="filepath", label="Audio file", elem_id="upload")
                language, task = language_and_task(loaded, default_language)
                prompt = prompt_box("file-prompt")
                run = gr.Button("Transcribe", variant="primary", elem_id="transcribe-file")
                file_status = gr.HTML(elem_id="file-status")
                transcript, srt, vtt = file_outputs()
                run.click(handlers.transcribe_file, [upload, language, task, prompt],
                          [transcript, srt, vtt, file_status])

            with gr.Tab("Microphone", id="microphone"):
                gr.Markdown("**Record**, then transcribe:")
                recording = gr.Audio(sources=["microphone"], type="filepath", label="Recording",
                                     elem_id="recording")
                mic_language, mic_task = language_and_task(loaded, default_language)
                recording_prompt = prompt_box("recording-prompt")
                run_recording = gr.Button("Transcribe the recording", variant="primary",
                                          elem_id="transcribe-recording")
                recording_status = gr.HTML(elem_id="recording-status")
                rec_transcript, rec_srt, rec_vtt = file_outputs()
                run_recording.click(handlers.transcribe_file, [recording, mic_language, mic_task, recording_prompt],
                                    [rec_transcript, rec_srt, rec_vtt, recording_status])
                gr.Markdown("**Live captions** from the microphone:")
                live = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Live microphone",
                                elem_id="live-microphone")
                live_prompt = prompt_box("live-prompt")
                session = gr.State(None)
                live_captions = gr.HTML(elem_id="live-captions")
                live_lag = gr.HTML(elem_id="live-lag")
                with gr.Row():
                    live_srt = gr.File(label="SRT", elem_id="live-srt")
                    live_vtt = gr.File(label="WebVTT", elem_id="live-vtt")
                live.stream(handlers.microphone_piece, [live, session, mic_language, mic_task, live_prompt],
                            [session, live_captions, live_lag], stream_every=0.5, time_limit=None,
                            concurrency_limit=max_streams, show_progress="hidden")
                live.stop_recording(handlers.microphone_stop, [session],
                                    [session, live_captions, live_lag, live_srt, live_vtt])

            with gr.Tab("Stream / URL", id="stream"):
                source = gr.Textbox(label="Stream URL (HTTP/Icecast, HLS .m3u8) or a local file. Finite sources "
                                          "(a file, a podcast link, an HLS VOD playlist) play in real time; live "
                                          "streams are captioned as they arrive", elem_id="stream-source")
                stream_language, stream_task = language_and_task(loaded, default_language)
                stream_prompt = prompt_box("stream-prompt")
                whole = gr.Checkbox(False, label="Transcribe a finite source whole, like the File tab (no live "
                                    "captions: the transcript comes at the end), instead of captioning it as it "
                                    "plays", elem_id="stream-whole")
                with gr.Row():
                    start = gr.Button("Start", variant="primary", elem_id="stream-start")
                    stop = gr.Button("Stop", elem_id="stream-stop")
                stream_status = gr.HTML(elem_id="stream-status")
                stream_captions = gr.HTML(elem_id="stream-captions")
                stream_lag = gr.HTML(elem_id="stream-lag")
                with gr.Row():
                    stream_srt = gr.File(label="SRT (rolling)")
                    stream_vtt = gr.File(label="WebVTT (rolling)")
                started = start.click(handlers.caption_stream,
                                      [source, stream_language, stream_task, whole, stream_prompt],
                                      [stream_captions, stream_lag, stream_status, stream_srt, stream_vtt],
                                      concurrency_limit=max_streams, show_progress="hidden")
                stop.click(None, None, None, cancels=[started])
    # One model: transcriptions of files and recordings take turns (the queue), live captions up to max_streams.
    demo.queue(default_concurrency_limit=1)
    return demo
