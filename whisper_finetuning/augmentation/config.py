"""The augmentation config file (YAML or JSON): a list of transforms, each with its probability `p` and parameter
ranges, checked against the schema below with errors that name the file, the transform and the fix.

    transforms:
      - name: colored_noise     # additive generated noise
        p: 0.8                  # probability that a sample gets this transform
        snr_db: [0, 20]         # a range [min, max] drawn uniformly per sample, or one number (always that value)
      - name: speed
        p: 0.5
        factor: [0.9, 1.1]

Transforms run in the listed order, each independently with its own `p`. Parameters left out take the defaults
below (`--help` of the pictures command and `describe_schema()` list them).
"""

from dataclasses import dataclass, field
from pathlib import Path

import yaml


class AugmentationConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Range:
    """A [min, max] range within [lowest, highest], drawn uniformly per sample."""
    lowest: float
    highest: float
    default: tuple[float, float]
    help: str


@dataclass(frozen=True)
class Count:
    lowest: int
    highest: int
    default: int
    help: str


@dataclass(frozen=True)
class Flag:
    default: bool
    help: str


@dataclass(frozen=True)
class Folder:
    """A folder of audio files (wav, flac, mp3, ogg, ...), searched recursively; required."""
    help: str


AUDIO_SUFFIXES = (".aif", ".aiff", ".flac", ".mp3", ".ogg", ".opus", ".wav")  # what libsndfile reads

SCHEMA: dict[str, dict[str, Range | Count | Flag | Folder]] = {
    "colored_noise": {
        "snr_db": Range(-10, 60, (5, 40), "signal-to-noise ratio in dB (whole clip over noise)"),
        "f_decay": Range(-12, 12, (-6, 6), "noise colour in dB per octave: 0 white, -3 pink, -6 brown, 3 blue"),
    },
    "background_noise": {
        "folder": Folder("noise recordings mixed in (ESC-50, MUSAN noise, DEMAND, ...)"),
        "snr_db": Range(-10, 60, (5, 30), "signal-to-noise ratio in dB"),
    },
    "speed": {"factor": Range(0.5, 2.0, (0.9, 1.1), "speed factor (resampling): 1.1 is 10 % faster and shorter, "
                                                    "pitch moves with it")},
    "pitch_shift": {"semitones": Range(-12, 12, (-2, 2), "pitch shift in semitones, duration kept")},
    "gain": {"gain_db": Range(-40, 40, (-6, 6), "gain in dB")},
    "room": {
        "rt60": Range(0.1, 2.0, (0.2, 0.8), "reverberation time in seconds"),
        "width": Range(2, 30, (3, 8), "room width in metres"),
        "depth": Range(2, 30, (3, 8), "room depth in metres"),
        "height": Range(2, 10, (2.4, 3.5), "room height in metres"),
        "mic_distance": Range(0.1, 10, (0.5, 2.5), "microphone distance from the speaker in metres"),
        "rooms": Count(1, 1000, 32, "rooms simulated (each once, on first use, from the seed) and drawn from"),
    },
    "impulse_response": {"folder": Folder("room impulse responses convolved with the audio")},
    "telephone": {
        "low_hz": Range(20, 1000, (200, 400), "high-pass cutoff in Hz"),
        "high_hz": Range(1000, 7900, (3000, 3600), "low-pass cutoff in Hz"),
        "narrowband": Flag(True, "pass through 8 kHz sampling (nothing above 4 kHz survives)"),
        "mu_law": Flag(True, "8-bit mu-law companding, as the G.711 telephone codec"),
    },
}


@dataclass(frozen=True)
class TransformSpec:
    name: str
    p: float
    parameters: dict = field(default_factory=dict)  # every parameter of SCHEMA[name], defaults filled in

    def label(self) -> str:
        return f"{self.name} (p={self.p:g})"


@dataclass(frozen=True)
class AugmentationConfig:
    transforms: tuple[TransformSpec, ...]
    source: str = ""

    def describe(self) -> str:
        return "; ".join(f"{spec.label()}: " + ", ".join(f"{key}={format_value(value)}"
                                                        for key, value in spec.parameters.items())
                         for spec in self.transforms)


def format_value(value) -> str:
    if isinstance(value, tuple):
        return f"{value[0]:g}..{value[1]:g}" if value[0] != value[1] else f"{value[0]:g}"
    return str(value)


def describe_schema() -> str:
    lines = ["  every transform: name, p (its probability per sample, 0 to 1, required), then its own:"]
    for name, parameters in SCHEMA.items():
        lines.append(f"  {name}:")
        for key, kind in parameters.items():
            default = "required" if isinstance(kind, Folder) else f"default {format_value(kind.default)}"
            lines.append(f"    {key}: {kind.help} ({default})")
    return "\n".join(lines)


def load_config(path: str | Path) -> AugmentationConfig:
    path = Path(path)
    if not path.is_file():
        raise AugmentationConfigError(f"augmentation config {path} does not exist; give a YAML or JSON file such as "
                                      "configs/augmentation/noise.yaml")
    try:
        content = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as error:
        raise AugmentationConfigError(f"augmentation config {path} is not valid YAML or JSON: {error}") from error
    return parse_config(content, str(path))


def parse_config(content, source: str = "augmentation config") -> AugmentationConfig:
    if not isinstance(content, dict) or set(content) != {"transforms"}:
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise AugmentationConfigError(f"{source}: expected a mapping with the single key 'transforms' (a list of "
                                      f"transforms), found {found}")
    transforms = content["transforms"]
    if not isinstance(transforms, list) or not transforms:
        raise AugmentationConfigError(f"{source}: 'transforms' must be a non-empty list of transforms, each "
                                      "{name: ..., p: ..., parameters}")
    specs = tuple(parse_transform(entry, f"{source}: transform {number}")
                  for number, entry in enumerate(transforms, start=1))
    return AugmentationConfig(specs, source)


def parse_transform(entry, where: str) -> TransformSpec:
    if not isinstance(entry, dict) or "name" not in entry:
        raise AugmentationConfigError(f"{where}: each transform is a mapping with a 'name' (one of "
                                      f"{', '.join(SCHEMA)}), not {entry!r}")
    name = entry["name"]
    if name not in SCHEMA:
        raise AugmentationConfigError(f"{where}: unknown transform {name!r}; known: {', '.join(SCHEMA)}")
    where = f"{where} ({name})"
    schema = SCHEMA[name]
    unknown = sorted(set(entry) - {"name", "p"} - set(schema))
    if unknown:
        raise AugmentationConfigError(f"{where}: unknown parameter(s) {', '.join(unknown)}; {name} takes p and "
                                      f"{', '.join(schema)}")
    if "p" not in entry:
        raise AugmentationConfigError(f"{where}: give p, the probability that a sample gets this transform (0 to 1)")
    p = entry["p"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise AugmentationConfigError(f"{where}: p must be a probability from 0 to 1, not {p!r}")
    parameters = {key: parse_value(entry.get(key), kind, f"{where}: {key}") for key, kind in schema.items()}
    if name == "telephone":
        low, high = parameters["low_hz"], parameters["high_hz"]
        if low[1] >= high[0]:
            raise AugmentationConfigError(f"{where}: low_hz {format_value(low)} must lie below high_hz "
                                          f"{format_value(high)}")
        if parameters["narrowband"] and high[1] > 3900:
            raise AugmentationConfigError(f"{where}: high_hz {format_value(high)} is above what 8 kHz sampling keeps; "
                                          "give at most 3900 or set narrowband: false")
    return TransformSpec(name, float(p), parameters)


def parse_value(value, kind, where: str):
    if isinstance(kind, Folder):
        return parse_folder(value, where)
    if value is None:
        return kind.default
    if isinstance(kind, Flag):
        if not isinstance(value, bool):
            raise AugmentationConfigError(f"{where} must be true or false, not {value!r}")
        return value
    if isinstance(kind, Count):
        if isinstance(value, bool) or not isinstance(value, int) or not kind.lowest <= value <= kind.highest:
            raise AugmentationConfigError(f"{where} must be a whole number from {kind.lowest} to {kind.highest}, "
                                          f"not {value!r}")
        return value
    return parse_range(value, kind, where)


def parse_range(value, kind: Range, where: str) -> tuple[float, float]:
    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if number(value):
        value = [value, value]
    if not (isinstance(value, list) and len(value) == 2 and all(number(x) for x in value)):
        raise AugmentationConfigError(f"{where} must be a range [min, max] or one number, not {value!r}")
    low, high = float(value[0]), float(value[1])
    if low > high:
        raise AugmentationConfigError(f"{where}: the range [{value[0]}, {value[1]}] runs backwards; write "
                                      f"[{value[1]}, {value[0]}]")
    if low < kind.lowest or high > kind.highest:
        raise AugmentationConfigError(f"{where}: [{value[0]}, {value[1]}] is outside the allowed "
                                      f"{kind.lowest:g} to {kind.highest:g} ({kind.help})")
    return low, high


def parse_folder(value, where: str) -> str:
    if not value or not isinstance(value, str):
        raise AugmentationConfigError(f"{where}: give the folder of audio files, e.g. folder: /data/noise")
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise AugmentationConfigError(f"{where}: {value} is not a folder")
    if not audio_files(folder):
        raise AugmentationConfigError(f"{where}: {value} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return str(folder)


def audio_files(folder: str | Path) -> list[str]:
    """The audio files in a folder and its subfolders, sorted (the order random choices index into)."""
    return sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
