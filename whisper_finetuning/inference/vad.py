"""Voice activity with Silero VAD (the `silero-vad` wheel ships its model: nothing is downloaded). Audio is scored in
windows of 32 ms, in order, keeping the model's state between calls, so a live stream can be fed piece by piece."""

import numpy as np
import torch

from ..data.audio import SAMPLING_RATE

WINDOW = 512  # samples at 16 kHz: the window Silero VAD takes
WINDOW_SECONDS = WINDOW / SAMPLING_RATE


class VoiceActivity:
    def __init__(self, threshold: float = 0.5):
        # silero_vad's import calls torch.set_num_threads(1) for the whole process, which would leave Whisper on one
        # core (and change its float sums): keep the process's setting.
        threads = torch.get_num_threads()
        try:
            from silero_vad import load_silero_vad
        except ModuleNotFoundError as error:
            raise RuntimeError("voice activity detection needs silero-vad: pip install 'whisper-finetuning[app]'") \
                from error
        finally:
            torch.set_num_threads(threads)
        self.model = load_silero_vad()
        self.threshold = threshold
        self.leftover = np.zeros(0, dtype=np.float32)

    def reset(self) -> None:
        self.model.reset_states()
        self.leftover = np.zeros(0, dtype=np.float32)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Speech (True) or not for each whole 32 ms window of the audio so far; a remainder shorter than a window
        waits for the next call."""
        audio = np.concatenate([self.leftover, np.asarray(samples, dtype=np.float32)])
        count = len(audio) // WINDOW
        self.leftover = audio[count * WINDOW:]
        flags = np.zeros(count, dtype=bool)
        with torch.inference_mode():
            for index in range(count):
                window = torch.from_numpy(audio[index * WINDOW:(index + 1) * WINDOW])
                flags[index] = float(self.model(window, SAMPLING_RATE)) >= self.threshold
        return flags
