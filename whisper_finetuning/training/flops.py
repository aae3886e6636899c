"""Floating-point operations of Whisper training, counted from the architecture.

The Trainer's `total_flos` multiplies the parameter count by the size of the input (80 x 3000 log-mel values per
clip for Whisper), which overstates the work by orders of magnitude. Here: 2 FLOPs per multiply-add of every
matrix product, forward, and three times that for a training step (the backward pass costs about twice the forward).
"""


def forward_flops(config, label_length: int) -> float:
    d, frames = config.d_model, 2 * config.max_source_positions  # 3000 mel frames -> 1500 encoder positions
    positions, mels = config.max_source_positions, config.num_mel_bins
    conv = 2 * mels * 3 * d * frames + 2 * d * 3 * d * positions
    encoder_layer = positions * (2 * 4 * d * d + 2 * 2 * d * config.encoder_ffn_dim) + 2 * 2 * positions**2 * d
    decoder_layer = (
        label_length * (2 * 4 * d * d + 2 * 2 * d * d + 2 * 2 * d * config.decoder_ffn_dim)  # self q,k,v,o; cross q,o
        + positions * 2 * 2 * d * d  # cross-attention keys and values of the encoder output
        + 2 * 2 * label_length**2 * d + 2 * 2 * label_length * positions * d  # attention scores and sums
    )
    output_projection = 2 * label_length * d * config.vocab_size
    return conv + config.encoder_layers * encoder_layer + config.decoder_layers * decoder_layer + output_projection


def training_flops_per_sample(config, label_length: int) -> float:
    return 3 * forward_flops(config, label_length)
