"""Training memory per Whisper size, full fine-tuning vs LoRA: weights + gradients + optimizer states +
activations, estimated from the architecture; `--measure` checks the estimate against whisper-base trained here.

    python benchmarks/memory_estimate.py [--batch_size 16] [--measure]

The estimate (GPU, fp16/bf16 mixed precision as the shipped configs use it, float32 master weights):
  full, AdamW       16 bytes per parameter (weights 4, gradients 4, two Adam moments 8)
  full, 8-bit AdamW 10 bytes per parameter (the moments in 8 bits: 2)
  LoRA              the frozen base at 4 (float32), 2 (bf16/fp16 base), 1 (8-bit) or 0.5 (4-bit) bytes per
                    parameter, plus 16 bytes per adapter parameter (rank r on the attention projections)
  activations       per sample and layer, 34 x positions x d_model bytes in 16-bit (Korthikanti et al. 2022, with a
                    fused attention kernel that keeps no score matrix), over the encoder's 1500 positions and the
                    decoder's labels; with activation checkpointing only each layer's 16-bit input is kept
                    (2 x positions x d_model) plus one layer's full activations during the recomputation.
CUDA context, allocator slack and the evaluation's generate() come on top (about 1-2 GB in practice).
`--measure`: whisper-base, float32 on this CPU (so weights, gradients and activations are 4-byte), batch 4 (or
--measure_batch_size): the peak resident memory of --measure_steps training steps (forward, backward, AdamW step)
minus that of the loaded model, in a fresh process per setup, next to the same estimate computed for float32 and
that batch; with the share of parameters trained and the samples/s of the steps after the first, side by side.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

SIZES = {  # d_model, encoder layers, decoder layers, heads, mel bins, vocabulary
    "tiny": (384, 4, 4, 6, 80, 51865), "base": (512, 6, 6, 8, 80, 51865), "small": (768, 12, 12, 12, 80, 51865),
    "medium": (1024, 24, 24, 16, 80, 51865), "large-v3": (1280, 32, 32, 20, 128, 51866),
    "large-v3-turbo": (1280, 32, 4, 20, 128, 51866),
}
ENCODER_POSITIONS, LABEL_LENGTH, LORA_MODULES_PER_ATTENTION = 1500, 128, 4  # q, k, v, out projections
GIB = 2**30


def config_of(size: str) -> WhisperConfig:
    d, encoder, decoder, heads, mels, vocab = SIZES[size]
    return WhisperConfig(d_model=d, encoder_layers=encoder, decoder_layers=decoder, encoder_attention_heads=heads,
                         decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d,
                         num_mel_bins=mels, vocab_size=vocab)


def parameters(config: WhisperConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in WhisperForConditionalGeneration(config).parameters())


def lora_parameters(config: WhisperConfig, rank: int) -> int:
    attentions = config.encoder_layers + 2 * config.decoder_layers  # encoder self; decoder self and cross
    return attentions * LORA_MODULES_PER_ATTENTION * 2 * rank * config.d_model


def activation_bytes(config: WhisperConfig, batch: int, checkpointing: bool, bytes_per_value: int = 2) -> float:
    d = config.d_model
    per_layer = [(ENCODER_POSITIONS, config.encoder_layers), (LABEL_LENGTH, config.decoder_layers)]
    scale = bytes_per_value / 2  # the 34 sbh rule counts 16-bit values
    if not checkpointing:
        total = sum(34 * positions * d * layers for positions, layers in per_layer)
    else:
        total = sum(2 * positions * d * layers for positions, layers in per_layer) + 34 * ENCODER_POSITIONS * d
    return total * batch * scale


def table(batch: int, rank: int) -> str:
    lines = [f"| model | parameters | full, AdamW | full, 8-bit AdamW | LoRA r={rank}, fp32 base | LoRA, 8-bit base | "
             f"activations / batch {batch} (checkpointing / none) |", "|---|---|---|---|---|---|---|"]
    for size in SIZES:
        config = config_of(size)
        count, adapter = parameters(config), lora_parameters(config, rank)
        with_checkpointing = activation_bytes(config, batch, True)
        without = activation_bytes(config, batch, False)
        lines.append(f"| {size} | {count / 1e6:.0f} M | {16 * count / GIB:.1f} GB | {10 * count / GIB:.1f} GB | "
                     f"{(4 * count + 16 * adapter) / GIB:.1f} GB | {(count + 16 * adapter) / GIB:.1f} GB | "
                     f"{with_checkpointing / GIB:.1f} / {without / GIB:.1f} GB |")
    return "\n".join(lines)


def measure_one(setup: str, batch: int, steps: int) -> dict:
    """Run in a fresh process: peak RSS of training steps above the loaded model (float32, CPU), and their speed."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config_of("base")).train()
    if setup.startswith("lora"):
        model = get_peft_model(model, LoraConfig(r=32, lora_alpha=64, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                       "out_proj"]))
    if setup.endswith("checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    features = torch.randn(batch, 80, 3000)
    labels = torch.randint(0, 50000, (batch, LABEL_LENGTH))
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        model(input_features=features, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - began)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    timed = times[1:] or times  # the first step also allocates the optimizer's states
    return {"setup": setup, "measured": (peak - loaded - features.numel() * 4) / GIB,
            "trainable_share": trained / sum(p.numel() for p in model.parameters()),
            "samples_per_second": batch * len(timed) / sum(timed)}


def measure(batch: int, steps: int) -> str:
    config = config_of("base")
    count, adapter = parameters(config), lora_parameters(config, 32)
    # float32 on CPU: gradients 4 + AdamW moments 8 bytes per trained parameter, activations in 4 bytes.
    estimates = {
        "full": 12 * count + activation_bytes(config, batch, False, 4),
        "full, checkpointing": 12 * count + activation_bytes(config, batch, True, 4),
        "lora": 12 * adapter + activation_bytes(config, batch, False, 4),
        "lora, checkpointing": 12 * adapter + activation_bytes(config, batch, True, 4),
    }
    lines = [f"\nwhisper-base here (CPU, float32, batch {batch}, {steps} steps per setup in a fresh process, the "
             f"first not timed): memory of the training steps above the loaded model, and their speed",
             "| setup | trained parameters | estimated | measured | samples/s |", "|---|---|---|---|---|"]
    for setup, estimate in estimates.items():
        run = subprocess.run([sys.executable, __file__, "--measure_one", setup, "--batch_size", str(batch),
                              "--measure_steps", str(steps)], capture_output=True, text=True, check=True)
        result = json.loads(run.stdout.strip().splitlines()[-1])
        lines.append(f"| {setup} | {100 * result['trainable_share']:.2f} % | {estimate / GIB:.2f} GB | "
                     f"{result['measured']:.2f} GB | {result['samples_per_second']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=16, help="batch of the estimate table")
    parser.add_argument("--lora_r", type=int, default=32)
    parser.add_argument("--measure", action="store_true", help="also measure whisper-base on this machine")
    parser.add_argument("--measure_batch_size", type=int, default=4)
    parser.add_argument("--measure_steps", type=int, default=3, help="training steps per measured setup (the first "
                        "is not timed)")
    parser.add_argument("--measure_one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_one:
        print(json.dumps(measure_one(args.measure_one, args.batch_size, args.measure_steps)))
        return
    print(table(args.batch_size, args.lora_r))
    if args.measure:
        print(measure(args.measure_batch_size, args.measure_steps))


if __name__ == "__main__":
    main()
