"""Batch collation for Whisper fine-tuning."""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SpeechSeq2SeqCollator:
    """Stack log-mel features and pad labels with -100 (ignored by the loss).

    Labels start with <|startoftranscript|>, which the model prepends itself when it shifts the labels right to
    make the decoder inputs, so it is removed here. The check uses decoder_start_token_id: Whisper's bos_token_id is
    <|endoftext|>, and comparing with it (as the original example did) left the start token doubled.
    """

    decoder_start_token_id: int

    def __call__(self, features: list[dict]) -> dict:
        input_features = torch.from_numpy(np.stack([np.asarray(f["input_features"], dtype=np.float32)
                                                    for f in features]))
        labels = [list(f["labels"]) for f in features]
        if all(label and label[0] == self.decoder_start_token_id for label in labels):
            labels = [label[1:] for label in labels]
        length = max(len(label) for label in labels)
        padded = torch.full((len(labels), length), -100, dtype=torch.long)
        for row, label in enumerate(labels):
            padded[row, : len(label)] = torch.tensor(label, dtype=torch.long)
        batch = {"input_features": input_features, "labels": padded}
        if "row" in features[0]:  # the stream position of each sample (see stream.TrainingStream)
            batch["pass"] = torch.tensor([f["pass"] for f in features])
            batch["row"] = torch.tensor([f["row"] for f in features])
        return batch
