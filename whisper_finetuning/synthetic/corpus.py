"""Generate a small spoken corpus with eSpeak NG in the exact Common Voice release and FLEURS layouts.

    python -m whisper_finetuning.synthetic.corpus --output_dir data/synthetic --languages en sv de uk

writes, per language,
    common_voice/<locale>/clips/*.mp3 (48 kHz), train.tsv dev.tsv test.tsv validated.tsv other.tsv
        invalidated.tsv clip_durations.tsv                 (Common Voice 17 columns)
    fleurs/<config>/{train,dev,test}.tsv, audio/<split>/*.wav (16 kHz)   (FLEURS columns, no header)
Sentences come from sentences/corpus_<lang>.txt; each sentence belongs to one split only. Speakers are eSpeak
voice variants with their own rate and pitch, so the corpus has several voices of both genders. With
--held_out_test_voices N the test split is spoken by N other voices (other variants, rates and pitches), so a test
score measures voices as well as sentences never heard in training.
"""

import argparse
import csv
import hashlib
import json
import random
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import soundfile
from tqdm.auto import tqdm

from normalizers import get_language, get_target_normalizer

from ..data.audio import to_model_rate
from .tts import synthesize

SPLITS = ("train", "dev", "test")
CV_COLUMNS = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
              "gender", "accents", "variant", "locale", "segment"]
# eSpeak variants: m* are male, f* female voices.
VARIANTS = [("m1", "male"), ("f2", "female"), ("m3", "male"), ("f4", "female"), ("m7", "male"), ("f1", "female")]
# Variants no training speaker uses: the voices of a held-out test split.
HELD_OUT_VARIANTS = [("m2", "male"), ("f3", "female"), ("m4", "male"), ("f5", "female"), ("m6", "male")]
CV_GENDER = {"male": "male_masculine", "female": "female_feminine"}


@dataclass
class Speaker:
    voice: str
    gender: str
    rate: int
    pitch: int
    accent: str = ""

    @property
    def client_id(self) -> str:
        return hashlib.sha256(f"{self.voice}-{self.rate}-{self.pitch}".encode()).hexdigest()


def base_voices(language: str) -> list[tuple[str, str]]:
    table = json.loads(files(__package__).joinpath("voices.json").read_text())
    return [tuple(entry) for entry in table.get(language, [[language, ""]])]


def speakers_for(language: str, count: int, seed: int, held_out: bool = False) -> list[Speaker]:
    """Speakers cycling through voice variants (gender) and the language's base voices (accent); `held_out` picks
    variants (and rates and pitches) that the default speakers never use."""
    variants = HELD_OUT_VARIANTS if held_out else VARIANTS
    if held_out and count > len(HELD_OUT_VARIANTS):
        raise ValueError(f"at most {len(HELD_OUT_VARIANTS)} held-out voices, not {count}")
    rng = random.Random(f"{seed}-{language}" + ("-held-out" if held_out else ""))
    voices = base_voices(language)
    chosen = []
    for index in range(count):
        variant, gender = variants[index % len(variants)]
        voice, accent = voices[index % len(voices)]
        chosen.append(Speaker(f"{voice}+{variant}", gender, rng.randint(120, 170), rng.randint(30, 70), accent))
    return chosen


def read_sentences(name: str) -> list[str]:
    text = files(__package__).joinpath(f"sentences/{name}.txt").read_text("utf-8")
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def sentence_splits(language: str, seed: int, sentence_set: str = "corpus") -> dict[str, list[str]]:
    """Disjoint train/dev/test sentence lists: the set's own split files (<set>_<lang>_<split>.txt) where it has
    them, otherwise <set>_<lang>.txt split 60/20/20 after a seeded shuffle. "demo+more" joins two sets split by
    split; a sentence in two splits is refused."""
    splits = {split: [] for split in SPLITS}
    for name in sentence_set.split("+"):
        for split, sentences in one_set_splits(language, seed, name).items():
            splits[split].extend(sentences)
    seen = {}
    for split in SPLITS:
        for sentence in splits[split]:
            if seen.setdefault(sentence, split) != split:
                raise ValueError(f"sentence set {sentence_set!r} ({language}) has {sentence!r} in both "
                                 f"{seen[sentence]} and {split}: a split's sentences must be new to the others")
        splits[split] = list(dict.fromkeys(splits[split]))
    return splits


def one_set_splits(language: str, seed: int, sentence_set: str) -> dict[str, list[str]]:
    folder = files(__package__).joinpath("sentences")
    if folder.joinpath(f"{sentence_set}_{language}_train.txt").is_file():
        return {split: read_sentences(f"{sentence_set}_{language}_{split}") for split in SPLITS}
    sentences = read_sentences(f"{sentence_set}_{language}")
    random.Random(seed).shuffle(sentences)
    n_dev = n_test = max(1, len(sentences) // 5)
    return {"train": sentences[n_dev + n_test:], "dev": sentences[:n_dev], "test": sentences[n_dev:n_dev + n_test]}


def write_tsv(path: Path, rows: list[list], header: list[str] | None = None) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def write_common_voice(root: Path, language: str, splits: dict, speakers: dict[str, list[Speaker]],
                       synthesize=synthesize) -> Path:
    locale = get_language(language).common_voice[0]
    folder = root / "common_voice" / locale
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    rows_by_split, durations, number = {}, [], 0
    for split in SPLITS:
        rows = []
        for sentence in tqdm(splits[split], desc=f"common voice {locale} {split}", leave=False):
            speaker = speakers[split][number % len(speakers[split])]
            samples, rate = synthesize(sentence, speaker.voice, speaker.rate, speaker.pitch)
            samples = to_model_rate(samples, rate, 48_000)
            name = f"common_voice_{locale}_{10_000_000 + number}.mp3"
            soundfile.write(folder / "clips" / name, samples, 48_000, format="MP3")
            sentence_id = hashlib.sha256(sentence.encode()).hexdigest()
            rows.append([speaker.client_id, name, sentence_id, sentence, "", 2, 0, "", CV_GENDER[speaker.gender],
                         speaker.accent, "", locale, ""])
            durations.append([name, round(1000 * len(samples) / 48_000)])
            number += 1
        rows_by_split[split] = rows
        write_tsv(folder / f"{split}.tsv", rows, CV_COLUMNS)
    write_tsv(folder / "validated.tsv", [r for s in SPLITS for r in rows_by_split[s]], CV_COLUMNS)
    for empty in ("other", "invalidated", "reported"):
        write_tsv(folder / f"{empty}.tsv", [], CV_COLUMNS)
    write_tsv(folder / "clip_durations.tsv", durations, ["clip", "duration[ms]"])
    return folder


def write_fleurs(root: Path, language: str, splits: dict, speakers: dict[str, list[Speaker]],
                 synthesize=synthesize) -> Path:
    config = get_language(language).fleurs
    folder = root / "fleurs" / config
    normalize = get_target_normalizer(language, do_lower_case=True, do_remove_punctuation=True)
    rng = random.Random(f"fleurs-{language}")
    number = 0
    for split in SPLITS:
        (folder / "audio" / split).mkdir(parents=True, exist_ok=True)
        rows = []
        for sentence in tqdm(splits[split], desc=f"fleurs {config} {split}", leave=False):
            speaker = speakers[split][(number + 1) % len(speakers[split])]  # another voice than the Common Voice copy
            samples, rate = synthesize(sentence, speaker.voice, speaker.rate, speaker.pitch)
            samples = to_model_rate(samples, rate)
            name = f"{rng.randrange(10**18, 10**19)}.wav"
            soundfile.write(folder / "audio" / split / name, samples, 16_000, subtype="PCM_16")
            phonemes = " | ".join(" ".join(word) for word in normalize(sentence).split())
            rows.append([1000 + number, name, sentence, normalize(sentence), phonemes, len(samples),
                         speaker.gender.upper()])
            number += 1
        write_tsv(folder / f"{split}.tsv", rows)
    return folder


def generate(output_dir: Path, languages: list[str], layouts: list[str], num_speakers: int = 6, seed: int = 0,
             sentence_set: str = "corpus", synthesize=synthesize, held_out_test_voices: int = 0) -> None:
    """Write the corpus; `synthesize(text, voice, rate, pitch) -> (samples, sample_rate)` speaks (eSpeak NG).
    With `held_out_test_voices` > 0 the test split gets that many voices of its own."""
    for language in languages:
        code = get_language(language).code
        splits = sentence_splits(code, seed, sentence_set)
        speakers = dict.fromkeys(SPLITS, speakers_for(code, num_speakers, seed))
        if held_out_test_voices:
            speakers["test"] = speakers_for(code, held_out_test_voices, seed, held_out=True)
        if "common_voice" in layouts:
            write_common_voice(output_dir, code, splits, speakers, synthesize)
        if "fleurs" in layouts:
            write_fleurs(output_dir, code, splits, speakers, synthesize)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--languages", nargs="+", default=["en", "sv", "de", "uk"])
    parser.add_argument("--layouts", nargs="+", choices=["common_voice", "fleurs"], default=["common_voice", "fleurs"])
    parser.add_argument("--num_speakers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sentence_set", default="corpus",
                        help="sentence lists in synthetic/sentences/ (corpus, demo, demo+more: '+' joins sets)")
    parser.add_argument("--held_out_test_voices", type=int, default=0,
                        help=f"speak the test split with this many voices no other split uses "
                             f"(at most {len(HELD_OUT_VARIANTS)}; 0: the same voices as training)")
    args = parser.parse_args()
    generate(args.output_dir, args.languages, args.layouts, args.num_speakers, args.seed, args.sentence_set,
             held_out_test_voices=args.held_out_test_voices)
    print(f"Wrote {', '.join(args.layouts)} layouts for {', '.join(args.languages)} to {args.output_dir}")


if __name__ == "__main__":
    main()
