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

    A label with a previous-text prompt (`<|startofprev|> ... <|startoftranscript|> ...`, features/targets.py) cannot
    be shifted by the model: it would start the decoder with <|startoftranscript|> and no prompt. A batch holding one
    gets its decoder inputs here (each label less its last token) and its targets (each label less its first token),
    the prompt and <|startoftranscript|> left out of the loss (-100): the model reads the prompt but is not trained
    to write it, as distil-whisper trains. Other samples come out the same either way.
    """

    decoder_start_token_id: int
    pad_token_id: int = 50257  # <|endoftext|>; the decoder inputs past a label's end are never scored

    def __call__(self, features: list[dict]) -> dict:
        input_features = torch.from_numpy(np.stack([np.asarray(f["input_features"], dtype=np.float32)
                                                    for f in features]))
        labels = [list(f["labels"]) for f in features]
        batch = {"input_features": input_features}
        if all(label and label[0] == self.decoder_start_token_id for label in labels):
            batch["labels"] = padded([label[1:] for label in labels], -100)
        else:
            starts = [label.index(self.decoder_start_token_id) for label in labels]
            batch["decoder_input_ids"] = padded([label[:-1] for label in labels], self.pad_token_id)
            batch["labels"] = padded([[-100] * start + label[start + 1:] for start, label in zip(starts, labels)],
                                     -100)
        if "row" in features[0]:  # the stream position of each sample (see stream.TrainingStream)
            batch["pass"] = torch.tensor([f["pass"] for f in features])
            batch["row"] = torch.tensor([f["row"] for f in features])
        return batch


def padded(sequences: list[list[int]], value: int) -> torch.Tensor:
    """The sequences right-padded with `value` to the longest."""
    tensor = torch.full((len(sequences), max(len(s) for s in sequences)), value, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        tensor[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return tensor
