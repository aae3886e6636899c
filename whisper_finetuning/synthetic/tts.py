"""Speak text with eSpeak NG, loaded from the `espeakng-loader` wheel (no system package needed).

eSpeak NG keeps one global synthesizer per process, so this module initialises it once and serialises calls.
"""

import ctypes
import threading

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
CHARS_UTF8 = 1
PARAMETER = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}
ERROR_OK = 0

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_lock = threading.Lock()
_engine = None


class _Engine:
    def __init__(self):
        try:
            import espeakng_loader
        except ModuleNotFoundError as error:
            raise RuntimeError("speech synthesis needs eSpeak NG: pip install espeakng-loader") from error
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"eSpeak NG failed to initialise with its data at {data_path.decode()}")
        self.chunks = []
        self.callback = _CALLBACK(self._collect)  # keep a reference: the library calls it later
        self.lib.espeak_SetSynthCallback(self.callback)

    def _collect(self, samples, count, events):
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = go on synthesising

    def speak(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != ERROR_OK:
            raise ValueError(f"eSpeak NG has no voice {voice!r} (use a language code such as 'en', 'sv' or 'de+f3')")
        self.lib.espeak_SetParameter(PARAMETER["rate"], rate, 0)
        self.lib.espeak_SetParameter(PARAMETER["pitch"], pitch, 0)
        self.chunks = []
        encoded = text.encode("utf-8") + b"\0"
        status = self.lib.espeak_Synth(encoded, len(encoded), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        if status != ERROR_OK:
            raise RuntimeError(f"eSpeak NG failed (error {status}) on {text!r}")
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)
        return samples.astype(np.float32) / 32768.0


def synthesize(text: str, voice: str = "en", rate: int = 165, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Return (float32 mono waveform in [-1, 1], sample rate) for `text` spoken by eSpeak NG.

    `voice` is an eSpeak voice name, optionally with a variant ("sv", "en-us+f3", "de+m2"); `rate` is words per
    minute (80-450) and `pitch` 0-99.
    """
    global _engine
    with _lock:
        if _engine is None:
            _engine = _Engine()
        return _engine.speak(text, voice, rate, pitch), _engine.sample_rate
