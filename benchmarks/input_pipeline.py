"""Input-pipeline throughput: the kit's path vs the default `datasets` path, on the same data in the same run.

    python benchmarks/input_pipeline.py [--corpus DIR] [--locale sv-SE] [--passes 3]

Each reads one Common Voice folder (48 kHz mp3) and produces batches of 16 kHz log-mel features [B, 80, 3000]:
  default  datasets' Audio(sampling_rate=16000) cast (torchcodec + FFmpeg decode and resample) and the
           WhisperFeatureExtractor per example in `map`, as the anchor script does;
  kit      sources.load_source -> Preprocessor (soundfile decode, soxr resample, log-mel over the real audio only);
  cache    the kit's feature cache (features.cache, training's --feature_cache_dir): built once, then read back.
Prints samples/s for each and the ratio. The default path needs `pip install torchcodec` and FFmpeg's libraries.
Without --corpus, a synthetic corpus is generated first (not timed).
"""

import argparse
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
from transformers import WhisperFeatureExtractor, WhisperTokenizer

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="a folder with common_voice/<locale>/ (default: generate one)")
    parser.add_argument("--locale", default="sv-SE")
    parser.add_argument("--split", default="validated", help="Common Voice split to read (default: all clips)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--passes", type=int, default=3)
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
