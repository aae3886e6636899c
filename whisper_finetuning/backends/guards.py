"""The long-form guards: what both backends do on recordings over 30 s (run_eval.py's defaults, the app's and live
captions' long-form decoding), in transformers' generate() names, and the same as faster-whisper's arguments."""

import logging
import math

logger = logging.getLogger(__name__)

# Whisper's guards for long-form audio with OpenAI's transcribe() defaults, as generate() arguments of transformers
# (models/whisper/generation_whisper.py). The compression ratio is taken over tokens there, over text in OpenAI's
# code (2.4); 1.35 is the value transformers' documentation gives for it. One default differs from OpenAI's:
# conditioning on the previous window is off. With it, one "you" made up in a silent window became the prompt of the
# next and whisper-tiny.en wrote "you" twenty times and lost the sentence of benchmarks/eval_long_form.py (without
# it: the sentence, between five "you"); on 90 s of clean speech it gained 2 points of WER (10.64 vs 12.77 %).
LONG_FORM_GUARDS = {"temperature": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), "compression_ratio_threshold": 1.35,
                    "logprob_threshold": -1.0, "no_speech_threshold": 0.6, "condition_on_prev_tokens": False}

# faster-whisper (like OpenAI) measures the compression ratio of a window's text; transformers, whose guards the
# kit's options describe, measures it on token ids, where 1.35 stands for OpenAI's 2.4 on text.
TEXT_COMPRESSION_RATIO = 2.4


def faster_whisper_guards(guards: dict) -> dict:
    """The kit's long-form guards (transformers' generate() names) as faster-whisper's transcribe() arguments."""
    ratio = guards["compression_ratio_threshold"]
    if math.isfinite(ratio) and ratio != LONG_FORM_GUARDS["compression_ratio_threshold"]:
        logger.warning("The CTranslate2 backend measures the compression ratio on text, with OpenAI's threshold "
                       "%.1f; --compression_ratio_threshold %g (on token ids) is not used (inf turns the check off)",
                       TEXT_COMPRESSION_RATIO, ratio)
    return {"temperature": list(guards["temperature"]),
            "compression_ratio_threshold": ratio if math.isinf(ratio) else TEXT_COMPRESSION_RATIO,
            "log_prob_threshold": guards["logprob_threshold"], "no_speech_threshold": guards["no_speech_threshold"],
            "condition_on_previous_text": guards["condition_on_prev_tokens"]}
