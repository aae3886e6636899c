"""Stage 5: from a fine-tuned model to deployment: merging a LoRA adapter into a plain checkpoint (merge)."""
