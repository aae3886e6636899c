"""The transformers backend: a checkpoint (Hub id, folder, offline copy, or a LoRA adapter merged into its base) run
by PyTorch, in the dtype that suits the machine, with fast CPU attention.

- A batch: generate() on the stacked log-mel windows (run_eval.py's clips up to 30 s, greedy or with beams).
- A recording: Whisper's own sequential long-form decoding (generate() on the whole log-mel): each 30 s window starts
  where the last complete segment of the previous one ended, so no word is cut at a window border. The transformers
  pipeline's chunking with stride is not offered: on a fresh test environment it ended a 50 s recording with "see
  you in the next video" repeated to the token limit, where long-form decoding did not
  (tests/integration/test_live_stream.py); benchmarks/stream_replay.py still measures it as the baseline.
- A window into timed words (`WordTranscriber`): the text comes from an ordinary greedy generate() (the window's
  encoder output computed once). The word times come from OpenAI's method: one more decoder pass over the finished
  text records the cross-attention of the model's alignment heads, which dynamic time warping maps onto the audio
  frames. transformers can return the same token times from generate(return_token_timestamps=True), but that
  switches the whole model to eager attention for good (the encoder then runs about 1.5x slower on CPU); the extra
  pass here costs one decoder prefill. It also gives the no-speech probability and the mean log-probability that
  the live-caption guards use.
"""

import numpy as np
import torch
from transformers.models.whisper.generation_whisper import _dynamic_time_warping, _median_filter
from transformers.models.whisper.tokenization_whisper import _combine_tokens_into_words

from normalizers import get_language

from ..data.audio import SAMPLING_RATE
from ..features.log_mel import LogMelExtractor
from ..features.targets import MAX_PROMPT_TOKENS
from ..loading import choose_dtype, load_whisper
from .base import Backend, LongTranscript, ModelFormatError, Segment
from .cpu_attention import enable_fast_cpu_attention
from .guards import LONG_FORM_GUARDS
from .words import TOKENS_PER_SECOND_LIMIT, WINDOW_SECONDS, WindowTranscript, Word, clip_long_words

WINDOW_FRAMES = 3000  # log-mel frames of Whisper's 30 s window
FRAMES_PER_SECOND = 100  # log-mel frames (hop of 160 samples at 16 kHz)
SECONDS_PER_FRAME = 0.02  # one encoder position


class TransformersBackend(Backend):
    """A transformers WhisperForConditionalGeneration and its processor (call `enable_fast_cpu_attention(model)`
    first for speed on CPU; `load` does)."""

    name = "transformers"
    # Digital silence (see evaluation.transcriber.drop_digital_silence): Whisper writes "you" over it with
    # confidence, which transformers' no-speech guard keeps, and decoding it takes as long as speech.
    drops_digital_silence = True

    @classmethod
    def load(cls, name_or_path: str, dtype: str = "auto", device: str | None = None,
             attn_implementation: str = "sdpa", **hub_kwargs) -> "TransformersBackend":
        """A Hub id or a folder (a training output, a checkpoint-N folder, a LoRA adapter merged into its base) in
        `dtype` (see loading.choose_dtype), moved to `device` (None: where it loads), fast CPU attention enabled;
        `hub_kwargs` (revision, cache_dir, token) go to the Hub look-ups."""
        try:
            model, processor = load_whisper(name_or_path, dtype=choose_dtype(dtype),
                                            attn_implementation=attn_implementation, **hub_kwargs)
        except (OSError, ValueError) as error:  # no such id, no processor saved with the model, adapter without base
            raise ModelFormatError(
                f"cannot load {name_or_path}: {error}. A checkpoint folder needs the processor saved with the model "
                f"(WhisperProcessor.from_pretrained(BASE_MODEL).save_pretrained(FOLDER)); the kit's training saves "
                f"it into the output folder and every checkpoint-N.") from error
        if device is not None:
            model = model.to(device)
        enable_fast_cpu_attention(model)
        return cls(model, processor, name_or_path)

    @property
    def compute_type(self) -> str:
        return str(self.model.dtype).removeprefix("torch.")

    def check_generate_kwargs(self, generate_kwargs: dict) -> None:
        max_length, positions = generate_kwargs.get("max_length"), self.model.config.max_target_positions
        if max_length and max_length > positions:
            raise ValueError(f"--generation_max_length {max_length} is more than the {positions} tokens "
                             f"{self.name_or_path} can generate")

    def check_encoder_seconds(self, encoder_seconds: float) -> None:
        if encoder_seconds < WINDOW_SECONDS:
            raise ValueError(f"a shorter encoder input (encoder_seconds {encoder_seconds:g}) needs a CTranslate2 "
                             f"export (python -m whisper_finetuning.export --to ctranslate2); transformers' Whisper "
                             f"encoder takes the 30 s window only")

    def _generate(self, features: torch.Tensor, generate_kwargs: dict, **extra):
        features = features.to(self.model.device, self.model.dtype)
        if generate_kwargs.get("prompt_ids") is not None:
            generate_kwargs = {**generate_kwargs, "prompt_ids": torch.tensor(generate_kwargs["prompt_ids"],
                                                                             device=self.model.device)}
        with torch.inference_mode():
            return self.model.generate(features, **{**generate_kwargs, **extra})

    def transcribe_batch(self, features: torch.Tensor, generate_kwargs: dict) -> list[str]:
        tokens = self._generate(features, generate_kwargs)
        if isinstance(tokens, dict):
            tokens = tokens["sequences"]
        return [t.strip() for t in self.processor.batch_decode(tokens, skip_special_tokens=True)]

    def detect_languages(self, features: torch.Tensor) -> list[str]:
        if not self.is_multilingual:
            return ["en"] * len(features)
        with torch.inference_mode():
            ids = self.model.detect_language(input_features=features.to(self.model.device, self.model.dtype))
        return [token.strip("<|>") for token in self.processor.tokenizer.convert_ids_to_tokens(ids.flatten().tolist())]

    def transcribe_long(self, audio: np.ndarray, generate_kwargs: dict, guards: dict | None = None,
                        progress=None) -> LongTranscript:
        model, extract = self.model, self.processor.feature_extractor
        inputs = extract(audio, sampling_rate=SAMPLING_RATE, truncation=False, padding="longest",
                         return_attention_mask=True, return_tensors="pt")
        if guards is None:
            frames = inputs.input_features.shape[-1]
            if frames < WINDOW_FRAMES:  # short audio: one padded 30 s window
                inputs = extract(audio, sampling_rate=SAMPLING_RATE, return_attention_mask=True, return_tensors="pt")
            guards = LONG_FORM_GUARDS if frames > WINDOW_FRAMES else {}
        extra = {}
        if progress is not None:  # called before each 30 s window with [[frame, total frames]]
            extra["monitor_progress"] = lambda position: progress(float(position[0, 0]) / FRAMES_PER_SECOND)
        # The temperature fallback samples: a fixed seed gives the same text for the same recording in every run,
        # whatever came before it (fork_rng keeps the caller's random state as it was).
        devices = [model.device] if model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            output = self._generate(inputs.input_features, generate_kwargs,
                                    attention_mask=inputs.attention_mask.to(model.device), return_timestamps=True,
                                    return_segments=True, **extra, **guards)
        decode = self.processor.tokenizer.decode
        segments = [Segment(float(segment["start"]), float(segment["end"]),
                            decode(segment["tokens"], skip_special_tokens=True))
                    for segment in output["segments"][0]]
        text = self.processor.batch_decode(output["sequences"], skip_special_tokens=True)[0].strip()
        return LongTranscript(segments, text)

    def window_transcriber(self, encoder_seconds: float = WINDOW_SECONDS) -> "WordTranscriber":
        self.check_encoder_seconds(encoder_seconds)
        return WordTranscriber(self)


class WordTranscriber:
    """Transcribes windows with one transformers model; not thread-safe (use under `Backend.lock`)."""

    def __init__(self, loaded):
        self.model = loaded.model
        self.processor = loaded.processor
        self.tokenizer = loaded.processor.tokenizer
        self.config = loaded.model.generation_config
        self.log_mel = LogMelExtractor(loaded.processor.feature_extractor)
        self.alignment_heads = [tuple(head) for head in self.config.alignment_heads]
        self.no_speech_id = self.tokenizer.convert_tokens_to_ids("<|nocaptions|>")
        if self.no_speech_id == self.tokenizer.unk_token_id:
            self.no_speech_id = self.tokenizer.convert_tokens_to_ids("<|nospeech|>")

    def __call__(self, audio: np.ndarray, generate_kwargs: dict, prompt: str = "") -> WindowTranscript:
        """`generate_kwargs` as from `Backend.generate_kwargs` (no language: detect it); `prompt` is earlier
        text that conditions the decoder (it is not part of the result)."""
        if len(audio) > WINDOW_SECONDS * SAMPLING_RATE:
            raise ValueError(f"a window holds at most {WINDOW_SECONDS:.0f} s, got {len(audio) / SAMPLING_RATE:.1f} s")
        features = torch.from_numpy(self.log_mel(audio))[None].to(self.model.device, self.model.dtype)
        with torch.inference_mode():
            encoder_output = self.model.model.encoder(features)
            kwargs = dict(generate_kwargs)
            if self.is_multilingual and kwargs.get("language") is None:
                language_id = int(self.model.detect_language(encoder_outputs=encoder_output)[0])
                kwargs["language"] = self.tokenizer.convert_ids_to_tokens(language_id).strip("<|>")
            max_new_tokens = int(TOKENS_PER_SECOND_LIMIT * len(audio) / SAMPLING_RATE) + 8
            if prompt.strip():
                # The prompt's last tokens, as many as fit beside the start tokens and the new ones (generate()
                # refuses more than the decoder's positions; CTranslate2 cuts the same way).
                ids = self.processor.get_prompt_ids(prompt).tolist()
                room = max(min(MAX_PROMPT_TOKENS, self.model.config.max_target_positions - max_new_tokens - 5), 1)
                kwargs["prompt_ids"] = torch.tensor([ids[0], *ids[1:][-room:]], device=self.model.device)
            tokens = self.model.generate(encoder_outputs=encoder_output, max_new_tokens=max_new_tokens, **kwargs)
            text_tokens = [t for t in tokens[0].tolist() if t < self.tokenizer.eos_token_id]
            transcript = self._align(encoder_output.last_hidden_state, text_tokens, kwargs, len(audio))
        transcript.truncated = len(text_tokens) >= max_new_tokens
        return transcript

    @property
    def is_multilingual(self) -> bool:
        return bool(getattr(self.config, "is_multilingual", True))

    def _start_tokens(self, kwargs: dict) -> list[int]:
        """<|startoftranscript|> [<|lang|> <|task|>] <|notimestamps|>, as generate() began the transcript."""
        start = [self.config.decoder_start_token_id]
        if self.is_multilingual:
            start += [self.config.lang_to_id[f"<|{kwargs['language']}|>"],
                      self.config.task_to_id[kwargs.get("task", "transcribe")]]
        return start + [self.config.no_timestamps_token_id]

    def _align(self, encoder_states, text_tokens: list[int], kwargs: dict, num_samples: int) -> WindowTranscript:
        language = kwargs.get("language") or "en"
        start = self._start_tokens(kwargs)
        tokens = torch.tensor([start + text_tokens + [self.tokenizer.eos_token_id]], device=encoder_states.device)
        queries, keys = {}, {}
        hooks = []
        for layer in sorted({layer for layer, _ in self.alignment_heads}):
            attention = self.model.model.decoder.layers[layer].encoder_attn
            # WhisperAttention scales its queries by head_dim ** -0.5 before the product.
            hooks.append(attention.q_proj.register_forward_hook(
                lambda module, args, out, layer=layer, scale=attention.scaling:
                    queries.__setitem__(layer, out * scale)))
            hooks.append(attention.k_proj.register_forward_hook(
                lambda module, args, out, layer=layer: keys.__setitem__(layer, out)))
        try:
            decoder_output = self.model.model.decoder(input_ids=tokens, encoder_hidden_states=encoder_states,
                                                      use_cache=False)
        finally:
            for hook in hooks:
                hook.remove()
        logits = self.model.proj_out(decoder_output.last_hidden_state)[0].float()
        log_probs = logits.log_softmax(dim=-1)
        no_speech_prob = float(log_probs[0, self.no_speech_id].exp())
        predicted = log_probs[len(start) - 1:-1].gather(1, tokens[0, len(start):, None])
        avg_logprob = float(predicted.mean())
        if not text_tokens:
            return WindowTranscript([], language, no_speech_prob, avg_logprob)
        token_starts = self._token_times(queries, keys, len(start), len(text_tokens), num_samples)
        words, _, indices = _combine_tokens_into_words(self.tokenizer, text_tokens, get_language(language).name)
        timed = [Word(text, float(token_starts[group[0]]), float(token_starts[group[-1] + 1]))
                 for text, group in zip(words, indices)]
        return WindowTranscript(clip_long_words(timed), language, no_speech_prob, avg_logprob)

    def _token_times(self, queries, keys, num_start: int, num_text: int, num_samples: int) -> np.ndarray:
        """Start time of each text token and of the end token (num_text + 1 values), as OpenAI's find_alignment:
        the alignment heads' attention over the real audio frames, normalised, median-filtered, then DTW."""
        frames = max(1, int(np.ceil(num_samples / SAMPLING_RATE / SECONDS_PER_FRAME)))
        heads = self.model.config.decoder_attention_heads
        weights = []
        for layer, head in self.alignment_heads:
            query = queries[layer][0].unflatten(-1, (heads, -1))[:, head]  # [tokens, head_dim]
            key = keys[layer][0].unflatten(-1, (heads, -1))[:frames, head]  # [frames, head_dim]
            weights.append((query @ key.T).float().softmax(dim=-1))
        weights = torch.stack(weights)  # [heads, tokens, frames]
        std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
        weights = _median_filter((weights - mean) / std, self.model.config.median_filter_width)
        # Rows whose output is a text token or the end token: from <|notimestamps|> to the last text token.
        matrix = weights.mean(dim=0)[num_start - 1:num_start + num_text]
        text_indices, time_indices = _dynamic_time_warping(-matrix.double().cpu().numpy())
        jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
        return time_indices[jumps] * SECONDS_PER_FRAME
