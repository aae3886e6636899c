"""Input-pipeline throughput: the kit's path vs the default `datasets` path, on the same data in the same run.

    python benchmarks/input_pipeline.py [--corpus DIR] [--locale sv-SE] [--passes 3]

Each reads one Common Voice folder (48 kHz mp3) and produces batches of 16 kHz log-mel features [B, 80, 3000]:
  default  datasets' Audio(sampling_rate=16000) cast (torchcodec + FFmpeg decode and resample) and the
           WhisperFeatureExtractor per example in `map`, as the anchor script does;
  kit      sources.load_source -> Preprocessor (soundfile decode, soxr resample, log-mel over the real audio only);
  cache    the kit's feature cache (features.cache, training's --feature_cache_dir): built once, then read back.
Prints samples/s for each and the ratio. The default path needs `pip install torchcodec` and FFmpeg's libraries.
Without --corpus, a synthetic corpus is generated first (not timed).

    python benchmarks/input_pipeline.py --augmentation_config configs/augmentation/noise.yaml \
        configs/augmentation/full.yaml [--num_threads N]

measures instead the kit path without and with each augmentation config (the training stream's on-the-fly
waveform augmentation, keyed by (pass, row) as in training), on the same clips in the same run.
"""

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
from transformers import WhisperFeatureExtractor, WhisperTokenizer

from whisper_finetuning.augmentation import load_augmenter
from whisper_finetuning.data.mixing import DatasetSpec
from whisper_finetuning.data.sources import load_source
from whisper_finetuning.features import cache
from whisper_finetuning.features.preprocessing import Preprocessor, prepare
from whisper_finetuning.offline.resolver import resolve_model
from whisper_finetuning.synthetic.corpus import generate


class Processor:  # the two parts the Preprocessor uses, without loading a model
    def __init__(self, feature_extractor, tokenizer):
        self.feature_extractor, self.tokenizer = feature_extractor, tokenizer


def batches(examples, batch_size: int):
    batch = []
    for example in examples:
        batch.append(example["input_features"])
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def timed(make_stream, batch_size: int, passes: int) -> float:
    """Samples per second over `passes` full passes, the first batch of the first pass excluded (warm-up)."""
    samples, start = 0, None
    for _ in range(passes):
        for batch in batches(make_stream(), batch_size):
            if start is None:
                start = time.perf_counter()
                continue
            samples += len(batch)
    return samples / (time.perf_counter() - start)


def default_stream(folder: Path, split: str, feature_extractor):
    rows = [r for r in load_source(str(folder), None, split)]
    table = datasets.Dataset.from_dict({"audio": [r["audio"]["path"] for r in rows], "text": [r["text"] for r in rows]})
    stream = table.cast_column("audio", datasets.Audio(sampling_rate=16_000)).to_iterable_dataset()

    def extract(example):
        audio = example["audio"]
        array = audio.get_all_samples().data.numpy()[0] if hasattr(audio, "get_all_samples") else audio["array"]
        features = feature_extractor(array, sampling_rate=16_000).input_features[0]
        return {"input_features": features}

    return stream.map(extract)


def numbered_passes(folder: Path, split: str, preprocessor: Preprocessor):
    """A stream maker for `timed`: each call reads the next pass, its rows numbered (pass, row) as the training
    stream numbers them (the augmentation's key)."""
    passes = itertools.count()

    def stream():
        number = next(passes)
        rows = load_source(str(folder), None, split).map(lambda row, index: {"row": index, "pass": number},
                                                          with_indices=True)
        return prepare(rows, preprocessor)

    return stream


def compare_augmentation(folder: Path, split: str, processor, configs: list[str], args) -> None:
    """Samples/s without augmentation (measured first and last: the drift on a shared machine shows) and with each
    config, on the same clips."""
    def without():
        return timed(numbered_passes(folder, split, Preprocessor(processor, num_threads=args.num_threads)),
                     args.batch_size, args.passes)

    plain = without()
    print(f"no augmentation:  {plain:7.1f} samples/s")
    results = []
    for config in configs:
        augment = load_augmenter(config, seed=42)
        start = time.perf_counter()
        augment.warm_up()  # the room bank and lazily loaded libraries: once per run, not per sample
        print(f"{config}: warm-up {time.perf_counter() - start:.1f} s (once per run)")
        preprocessor = Preprocessor(processor, num_threads=args.num_threads, augment=augment)
        augmented = timed(numbered_passes(folder, split, preprocessor), args.batch_size, args.passes)
        applied = ", ".join(f"{name} {count}" for name, count in sorted(preprocessor.stats.augmented.items()))
        print(f"{config}: {augmented:7.1f} samples/s (applied: {applied})")
        results.append((config, augmented))
    again = without()
    print(f"no augmentation, again: {again:7.1f} samples/s")
    for config, augmented in results:
        print(f"{config}: {augmented / ((plain + again) / 2):.2f}x the samples/s without augmentation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="a folder with common_voice/<locale>/ (default: generate one)")
    parser.add_argument("--locale", default="sv-SE", help="the Common Voice locale folder (default sv-SE)")
    parser.add_argument("--split", default="validated", help="Common Voice split to read (default: all clips)")
    parser.add_argument("--batch_size", type=int, default=8, help="samples per batch (default 8)")
    parser.add_argument("--passes", type=int, default=3, help="passes over the clips, each timed path (default 3)")
    parser.add_argument("--augmentation_config", nargs="+", metavar="CONFIG",
                        help="compare the kit path without and with these augmentation configs instead")
    parser.add_argument("--num_threads", type=int, default=None,
                        help="the Preprocessor's threads (default: two per core, as in training)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        corpus = args.corpus
        if corpus is None:
            corpus = Path(scratch)
            generate(corpus, ["sv"], ["common_voice"])
        folder = corpus / "common_voice" / args.locale
        feature_extractor = WhisperFeatureExtractor()
        tokenizer = WhisperTokenizer.from_pretrained(resolve_model("openai/whisper-base"))
        processor = Processor(feature_extractor, tokenizer)
        count = sum(1 for _ in load_source(str(folder), None, args.split))
        print(f"{count} clips x {args.passes} passes, batch size {args.batch_size}, 48 kHz mp3 -> log-mel [80, 3000]")
        if args.augmentation_config:
            compare_augmentation(folder, args.split, processor, args.augmentation_config, args)
            return

        kit = timed(lambda: prepare(load_source(str(folder), None, args.split), Preprocessor(processor)),
                    args.batch_size, args.passes)
        print(f"kit path:     {kit:7.1f} samples/s")
        cache_dir = Path(scratch) / "feature-cache"
        start = time.perf_counter()
        cache.build_part(cache_dir, [DatasetSpec(str(folder), None, args.split, None)], {"benchmark": True},
                         Preprocessor(processor))
        print(f"cache build:  {time.perf_counter() - start:7.1f} s (once)")
        cached = timed(lambda: cache.restore_features(cache.load_feature_cache(cache_dir), 80, 3000),
                       args.batch_size, args.passes)
        print(f"kit + cache:  {cached:7.1f} samples/s ({cached / kit:.1f}x the kit path, --feature_cache_dir)")
        try:
            default = timed(lambda: default_stream(folder, args.split, feature_extractor), args.batch_size, args.passes)
        except (ImportError, OSError, RuntimeError) as error:
            print(f"default path: could not run ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
            return
        print(f"default path: {default:7.1f} samples/s")
        print(f"speed-up:     {kit / default:7.1f}x")


if __name__ == "__main__":
    main()
