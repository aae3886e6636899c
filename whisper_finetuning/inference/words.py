"""Transcribe one window of audio (up to 30 s) into words with start and end times.

The text comes from an ordinary greedy generate() (fast CPU attention, the window's encoder output computed once).
The word times come from OpenAI's method: one more decoder pass over the finished text records the cross-attention
of the model's alignment heads, which dynamic time warping maps onto the audio frames. transformers can return the
same token times from generate(return_token_timestamps=True), but that switches the whole model to eager
attention for good (the encoder then runs about 1.5x slower on CPU); the extra pass here costs one decoder
prefill. It also gives the no-speech probability and the mean log-probability that the guards use.
"""

from dataclasses import dataclass

import numpy as np
import torch
from transformers.models.whisper.generation_whisper import _dynamic_time_warping, _median_filter
from transformers.models.whisper.tokenization_whisper import _combine_tokens_into_words

from normalizers import get_language

from ..data.audio import SAMPLING_RATE
from ..features.log_mel import LogMelExtractor

WINDOW_SECONDS = 30.0
SECONDS_PER_FRAME = 0.02  # one encoder position
TOKENS_PER_SECOND_LIMIT = 8  # speech is ~3-4 tokens a second; more than this is a repetition loop


@dataclass
class Word:
    text: str  # as decoded, with its leading space and punctuation
    start: float  # seconds
    end: float

    def shifted(self, offset: float) -> "Word":
        return Word(self.text, round(self.start + offset, 3), round(self.end + offset, 3))


@dataclass
class WindowTranscript:
    words: list[Word]
    language: str  # Whisper code, forced or detected
    no_speech_prob: float  # probability of <|nospeech|> at the start of the transcript
    avg_logprob: float  # mean log-probability of the text tokens and the end token
    truncated: bool = False  # generation stopped at its token limit (more than 8 tokens a second: a loop)

    @property
    def text(self) -> str:
        return "".join(word.text for word in self.words).strip()


class WordTranscriber:
    """Transcribes windows with one model; not thread-safe (use under `InferenceModel.lock`)."""

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
        """`generate_kwargs` as from `InferenceModel.generate_kwargs` (no language: detect it); `prompt` is earlier
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
            if prompt.strip():
                kwargs["prompt_ids"] = torch.tensor(self.processor.get_prompt_ids(prompt), device=self.model.device)
            max_new_tokens = int(TOKENS_PER_SECOND_LIMIT * len(audio) / SAMPLING_RATE) + 8
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


SENTENCE_END = ".。!！?？"


def clip_long_words(words: list[Word]) -> list[Word]:
    """DTW gives a pause to the word next to it: the last word of a sentence ends when the next one starts, the
    first word after a pause starts where the pause does. As OpenAI's add_word_timestamps, cut such words to twice
    the median word duration (at most 1.4 s): a sentence's last word at its end, a first word at its start."""
    durations = [w.end - w.start for w in words if w.end > w.start]
    if not durations:
        return words
    longest = 2 * min(0.7, float(np.median(durations)))
    clipped = []
    for index, word in enumerate(words):
        start, end = word.start, word.end
        if end - start > longest and word.text.rstrip()[-1:] in SENTENCE_END:
            end = start + longest
        elif end - start > longest and (index == 0 or words[index - 1].text.rstrip()[-1:] in SENTENCE_END):
            start = end - longest
        clipped.append(Word(word.text, round(start, 3), round(end, 3)))
    return clipped
