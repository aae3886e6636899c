"""eSpeak NG from its wheel: several voices, rates and pitches."""

import numpy as np
import pytest

from whisper_finetuning.synthetic.tts import synthesize


def test_espeak_speaks_with_varied_voices():
    plain, rate = synthesize("Good morning, how are you today?", voice="en")
    assert rate == 22050 and plain.dtype == np.float32
    assert 1.0 < len(plain) / rate < 5.0 and np.sqrt(np.mean(plain ** 2)) > 0.02
    slow, _ = synthesize("Good morning, how are you today?", voice="en", rate=100)
    assert len(slow) > 1.3 * len(plain)
    other, _ = synthesize("Good morning, how are you today?", voice="en+f3", pitch=80)
    assert len(other) != len(plain) or not np.allclose(other, plain)
    swedish, _ = synthesize("Jag tycker om att läsa böcker.", voice="sv")
    assert len(swedish) > rate


def test_unknown_voice_is_an_error():
    with pytest.raises(ValueError, match="no voice 'xx-nowhere'"):
        synthesize("hello", voice="xx-nowhere")
