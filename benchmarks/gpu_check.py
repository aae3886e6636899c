"""GPU check: training throughput, peak memory and model FLOP utilisation of whisper-small, and evaluation RTFx,
through the kit's own Trainer and transcriber. One table; about 5-8 minutes on one GPU.

    bash benchmarks/gpu_check.sh      (in an environment made by scripts/setup.sh with TORCH_SPEC set to a CUDA
                                       build and EXTRAS=weights,demo,dev,deepspeed,bnb; each setup runs in its own
                                       process: python benchmarks/gpu_check.py --setup NAME prints one JSON line,
                                       --table FILE prints the table of those lines)

Training rows: whisper-small shapes, randomly initialised (throughput and memory do not depend on the weights, and
the device may have no Hub), batch 16 of 30 s log-mel inputs and 32-token labels, after 3 warm-up steps:
fp16 and bf16 mixed precision with AdamW; bf16 with 8-bit AdamW (bitsandbytes); bf16 with DeepSpeed ZeRO-2
(ds_config.json, optimizer offload to CPU); fp16 with the loss scale started at 2^24, so that its first steps
overflow: the fp16 rows count the steps the loss scaler skipped and show its final scale (the run must go on). MFU = the kit's FLOP count (training/flops.py) x samples/s / the GPU's
dense bf16/fp16 peak (from the table below; "-" for GPUs not in it).
Evaluation rows: run_eval's Transcriber with openai/whisper-base (offline copy) on 64 eSpeak clips, fp16, batch 16;
and the same clips with run_eval's CTranslate2 backend (faster-whisper's engine) on whisper-base exported to float16:
RTFx and WER of both.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import Seq2SeqTrainingArguments, TrainerCallback, WhisperConfig, WhisperForConditionalGeneration

from whisper_finetuning.training.collator import SpeechSeq2SeqCollator
from whisper_finetuning.training.flops import training_flops_per_sample
from whisper_finetuning.training.trainer import WhisperTrainer

REPO = Path(__file__).resolve().parents[1]
# Dense (not sparse) fp16/bf16 tensor-core peaks from the vendors' data sheets, FLOP/s.
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "L4": 121e12,
              "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12}
WHISPER_SMALL = dict(d_model=768, encoder_layers=12, decoder_layers=12, encoder_attention_heads=12,
                     decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, vocab_size=51865,
                     num_mel_bins=80, max_source_positions=1500, max_target_positions=448,
                     decoder_start_token_id=50258, pad_token_id=50257, bos_token_id=50257, eos_token_id=50257)
LABEL_LENGTH = 32
SETUPS = {"fp16": ("whisper-small fp16, AdamW", dict(fp16=True)),
          "bf16": ("whisper-small bf16, AdamW", dict(bf16=True)),
          "adam8bit": ("whisper-small bf16, 8-bit AdamW", dict(bf16=True, optim="adamw_bnb_8bit")),
          "zero2": ("whisper-small bf16, DeepSpeed ZeRO-2", dict(bf16=True, deepspeed=str(REPO / "ds_config.json"))),
          # fp16's loss scaler started at 2^24: its first steps overflow and are skipped (counted, not errors) until
          # the scale is low enough; the run must go on and end with finite weights.
          "fp16_overflow": ("whisper-small fp16, loss scale from 2^24", dict(fp16=True))}
INITIAL_LOSS_SCALE = {"fp16_overflow": 2.0**24}
COLUMNS = ["setup", "samples/s", "peak memory GiB", "MFU", "fp16 overflow steps", "final loss scale", "RTFx", "WER"]


class RandomSamples(torch.utils.data.Dataset):
    def __init__(self, count: int):
        generator = np.random.default_rng(0)
        self.features = generator.standard_normal((count, 80, 3000)).astype(np.float32)
        self.labels = generator.integers(0, 50000, (count, LABEL_LENGTH)).tolist()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"input_features": self.features[index], "labels": [50258, *self.labels[index]]}


def gpu_peak() -> float | None:
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_FLOPS.items() if key in name), None)


def train_row(name: str, steps: int, batch: int, initial_loss_scale: float | None = None, **settings) -> dict:
    config = WhisperConfig(**WHISPER_SMALL)
    model = WhisperForConditionalGeneration(config)
    with tempfile.TemporaryDirectory() as out:
        args = Seq2SeqTrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=steps + 3,
                                        learning_rate=1e-5, warmup_steps=0, logging_steps=1000, save_strategy="no",
                                        report_to=[], dataloader_num_workers=2, activation_checkpointing=True,
                                        **settings)
        trainer = WhisperTrainer(model=model, args=args, train_dataset=RandomSamples(batch * (steps + 3)),
                                 data_collator=SpeechSeq2SeqCollator(config.decoder_start_token_id))
        if initial_loss_scale is not None:  # accelerate's own GradScaler, with another starting scale
            trainer.accelerator.scaler = torch.amp.GradScaler("cuda", init_scale=initial_loss_scale)
        timings = []
        trainer.add_callback(_StepTimer(timings))
        trainer.train()
        guard = trainer.nonfinite_guard
        finite = all(torch.isfinite(p).all() for p in model.parameters())
    seconds = sum(timings[3:])  # after 3 warm-up steps
    samples_per_second = batch * steps / seconds
    achieved = training_flops_per_sample(config, LABEL_LENGTH + 1) * samples_per_second
    peak = gpu_peak()
    row = {"setup": name, "samples/s": f"{samples_per_second:.1f}",
           "peak memory GiB": f"{torch.cuda.max_memory_allocated() / 2**30:.1f}",
           "MFU": f"{100 * achieved / peak:.0f} %" if peak else "-"}
    if settings.get("fp16"):
        row["fp16 overflow steps"] = f"{guard.overflow_steps} of {steps + 3}" + ("" if finite else ", WEIGHTS NON-FINITE")
        row["final loss scale"] = f"{guard.loss_scale:g}"
    return row


class _StepTimer(TrainerCallback):
    """Records each optimizer step's wall time (synchronised with the GPU)."""

    def __init__(self, timings: list):
        self.timings, self.start = timings, None

    def on_step_begin(self, args, state, control, **kwargs):
        torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        torch.cuda.synchronize()
        self.timings.append(time.perf_counter() - self.start)


def spoken_rows() -> list[dict]:
    """64 English eSpeak clips as run_eval rows."""
    import soundfile

    from whisper_finetuning.data.audio import SAMPLING_RATE, to_model_rate
    from whisper_finetuning.synthetic.corpus import read_sentences
    from whisper_finetuning.synthetic.tts import synthesize

    rows = []
    for index, sentence in enumerate(read_sentences("corpus_en")[:64]):
        samples, rate = synthesize(sentence, "en-us", rate=150)
        path = Path(tempfile.gettempdir()) / f"gpu-check-{index}.wav"
        soundfile.write(path, to_model_rate(samples, rate), SAMPLING_RATE)
        rows.append({"id": str(index), "audio": {"path": str(path)}, "text": sentence})
    return rows


def word_error_rate(transcriber, rows: list[dict]) -> str:
    from normalizers import get_normalizer
    from whisper_finetuning.metrics import error_rate

    texts = {t.row["id"]: t.text for t in transcriber(rows)}
    rate = error_rate([r["text"] for r in rows], [texts.get(r["id"], "") for r in rows], "wer", get_normalizer("en"))
    return f"{rate.percent:.2f}"


def eval_row(batch: int) -> dict:
    from whisper_finetuning.backends.transformers_backend import TransformersBackend
    from whisper_finetuning.evaluation.transcriber import Transcriber
    from whisper_finetuning.loading import language_kwargs, load_whisper

    model, processor = load_whisper("openai/whisper-base", dtype=torch.float16)
    model = model.cuda()
    rows = spoken_rows()
    transcriber = Transcriber(TransformersBackend(model, processor), language_kwargs(model, "en"), batch_size=batch)
    wer = word_error_rate(transcriber, rows)
    return {"setup": f"evaluation, whisper-base fp16, batch {batch}", "samples/s": "-", "peak memory GiB": "-",
            "MFU": "-", "RTFx": f"{transcriber.throughput.rtfx:.0f}", "WER": wer}


def eval_ct2_row(batch: int) -> dict:
    """run_eval.py --backend ctranslate2: whisper-base exported to float16, the same clips and batch."""
    from whisper_finetuning.backends.load import load_backend
    from whisper_finetuning.evaluation.transcriber import Transcriber
    from whisper_finetuning.export.checkpoint import load_for_export
    from whisper_finetuning.export.ctranslate2 import convert_to_ctranslate2

    folder = Path(tempfile.mkdtemp()) / "whisper-base-ct2-float16"
    convert_to_ctranslate2(*load_for_export("openai/whisper-base"), folder, "float16")
    backend = load_backend(str(folder), device="cuda")
    transcriber = Transcriber(backend, {"language": "en", "task": "transcribe"}, batch_size=batch)
    wer = word_error_rate(transcriber, spoken_rows())
    return {"setup": f"evaluation, whisper-base CTranslate2 float16, batch {batch}", "samples/s": "-",
            "peak memory GiB": "-", "MFU": "-", "RTFx": f"{transcriber.throughput.rtfx:.0f}", "WER": wer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", choices=[*SETUPS, "eval", "eval_ct2"], help="measure one setup, print one JSON line")
    parser.add_argument("--table", type=Path, help="print the table of the JSON lines in this file")
    parser.add_argument("--steps", type=int, default=10, help="measured optimizer steps per setup (after 3 warm-up)")
    parser.add_argument("--batch_size", type=int, default=16)
    args = parser.parse_args()
    if args.table:
        rows = [json.loads(line) for line in args.table.read_text().splitlines() if line.startswith("{")]
        print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))
        for row in rows:
            print("| " + " | ".join(str(row.get(c, "-")) for c in COLUMNS) + " |")
        return
    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU visible (this check measures GPU training and evaluation)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.setup == "eval":
        row = eval_row(args.batch_size)
    elif args.setup == "eval_ct2":
        row = eval_ct2_row(args.batch_size)
    else:
        name, settings = SETUPS[args.setup]
        row = train_row(name, args.steps, args.batch_size, INITIAL_LOSS_SCALE.get(args.setup), **settings)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({**row, "gpu": torch.cuda.get_device_name()}), flush=True)


if __name__ == "__main__":
    main()
