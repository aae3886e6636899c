"""The model and processor to fine-tune: float32 weights, language and task forced, the chosen parts frozen; and
the mixed precision that suits the machine."""

import logging

import torch

from ..loading import cpu_has_native_bfloat16, import_peft, language_kwargs, load_whisper

logger = logging.getLogger(__name__)


def check_cpu_mixed_precision(training_args) -> None:
    """bf16 on a CPU without native bfloat16 (AVX-512 BF16 or AMX) is emulated in software: measured on an AVX2-only
    CPU, one whisper-base training step (batch 2) took 218 s under bf16 autocast and 8 s in float32. Train in float32
    there, and say so."""
    on_cpu = training_args.use_cpu or not torch.cuda.is_available()
    if training_args.bf16 and on_cpu and not cpu_has_native_bfloat16():
        logger.warning("--bf16 was asked for, but this CPU has no native bfloat16 (AVX-512 BF16 or AMX): emulated "
                       "bf16 is about 25x slower than float32 here, so this run trains in float32")
        training_args.bf16 = False
        training_args.mixed_precision = "no"  # derived from bf16 when the arguments were parsed


def load_model_for_training(model_args, finetuning_args, data_args):
    """Model and processor, with the language and task set where generate() and the tokenizer read them."""
    # Weights in float32 whatever the checkpoint stores (fp16/bf16 training is the Trainer's mixed precision).
    model, processor = load_whisper(
        model_args.model_name_or_path, dtype=torch.float32, attn_implementation=model_args.attn_implementation,
        model_kwargs={"dropout": finetuning_args.dropout, "apply_spec_augment": finetuning_args.apply_spec_augment,
                      "mask_time_prob": finetuning_args.mask_time_prob,
                      "mask_time_length": finetuning_args.mask_time_length,
                      "mask_feature_prob": finetuning_args.mask_feature_prob,
                      "mask_feature_length": finetuning_args.mask_feature_length,
                      **quantization_kwargs(finetuning_args)},
        cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token)
    if language_kwargs(model, data_args.language, data_args.task):  # English-only models refuse other languages
        if data_args.language is None:
            raise ValueError("--language is required to fine-tune a multilingual checkpoint (e.g. --language sv); "
                             "without it evaluation detects the language per sample")
        # Forcing language and task at generate time: without it, transformers >= 4.38 detects the language per
        # sample during evaluation ("Multiple languages detected").
        model.generation_config.language = data_args.language
        model.generation_config.task = data_args.task
        processor.tokenizer.set_prefix_tokens(language=data_args.language, task=data_args.task)
    model.generation_config.forced_decoder_ids = None
    model.config.forced_decoder_ids = None
    if finetuning_args.freeze_encoder:
        model.freeze_encoder()
    elif finetuning_args.freeze_feature_encoder:
        for module in (model.model.encoder.conv1, model.model.encoder.conv2):
            module.requires_grad_(False)
    if finetuning_args.use_peft:
        model = add_lora_adapter(model, finetuning_args, base_name=model_args.model_name_or_path)
    return model, processor


def quantization_kwargs(finetuning_args) -> dict:
    """A frozen 8-bit or 4-bit base for LoRA (bitsandbytes, CUDA only)."""
    if not (finetuning_args.load_in_8bit or finetuning_args.load_in_4bit):
        return {}
    if not torch.cuda.is_available():
        raise ValueError("--load_in_8bit/--load_in_4bit need a CUDA GPU (bitsandbytes); on a CPU train the LoRA "
                         "adapter on the full-precision base")
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    config = BitsAndBytesConfig(load_in_8bit=finetuning_args.load_in_8bit, load_in_4bit=finetuning_args.load_in_4bit,
                                bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)
    return {"quantization_config": config, "device_map": {"": torch.cuda.current_device()}}


def add_lora_adapter(model, finetuning_args, base_name: str):
    """Wrap the model in a LoRA adapter (peft): only the adapter's weights train and are saved."""
    peft = import_peft()
    LoraConfig, get_peft_model, prepare_model_for_kbit_training = (
        peft.LoraConfig, peft.get_peft_model, peft.prepare_model_for_kbit_training)

    if finetuning_args.load_in_8bit or finetuning_args.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    targets = finetuning_args.lora_target_modules
    targets = targets if targets == "all-linear" else [name.strip() for name in targets.split(",") if name.strip()]
    config = LoraConfig(r=finetuning_args.lora_r, lora_alpha=finetuning_args.lora_alpha,
                        lora_dropout=finetuning_args.lora_dropout, target_modules=targets, bias="none")
    model = get_peft_model(model, config)
    # peft records the folder the base was loaded from (for an offline copy, a path on this machine); the adapter
    # names its base as the user did, so it loads anywhere that base resolves. (What is saved names a local base by
    # its folder name, with the path in a local-only record: WhisperTrainer._save, loading.LOCAL_BASE.)
    model.peft_config["default"].base_model_name_or_path = base_name
    trainable, total = model.get_nb_trainable_parameters()
    logger.info("LoRA adapter (rank %d, on %s): %d of %d parameters train (%.2f %%)", finetuning_args.lora_r,
                finetuning_args.lora_target_modules, trainable, total, 100 * trainable / total)
    return model
