"""A tiny Mistral-architecture base model and tokenizer, built locally in seconds.

Tests, the demo and a fresh machine with no ``PRIA_BASE_MODEL`` train on this model instead of
Mistral-7B-Instruct. It is random-initialised (nothing is downloaded), saved with
``save_pretrained`` and loaded back through the same ``from_pretrained`` path production uses,
so the 4-bit loading, LoRA and adapter code is exercised for real.

Shape rules: every linear layer's output size is a multiple of 64, because bitsandbytes' CPU
4-bit kernels assert ``N % block_n == 0`` otherwise (an intermediate size of 688 failed, 768
works; docs/decisions.md). The vocabulary is padded up to a multiple of 64 for ``lm_head``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pria_ml.settings import Settings

HIDDEN_SIZE = 256
INTERMEDIATE_SIZE = 768
NUM_LAYERS = 4
NUM_HEADS = 4
NUM_KV_HEADS = 2
MAX_POSITIONS = 1024
VOCAB_TARGET = 2048
SEED = 1234

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|tool|>", "<|assistant|>", "<|end|>"]

# One turn per message: a role marker, the content, an end marker. Assistant turns end with EOS
# so generation stops after the action. System and tool turns are first-class here; the real
# Mistral-7B-Instruct template rejects them, which pria_ml.chat handles.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'tool', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + message['role']) }}"
    "{% endif %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '<|end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

MERCHANTS = [
    "Lufthansa", "Uber", "Hilton", "Starbucks", "Amazon", "Staples", "Shell", "Deutsche Bahn",
    "Marriott", "Dropbox", "Slack", "Vodafone", "IKEA", "Apple", "Pret", "Hertz",
]  # fmt: skip
CATEGORIES = [
    "travel", "transport", "lodging", "meals", "office", "software", "fuel", "telecom",
    "equipment",
]  # fmt: skip


def synthetic_corpus(lines: int = 4000, seed: int = SEED) -> list[str]:
    """PRIA-style expense chatter: the text the tiny tokenizer learns its merges from."""
    rng = random.Random(seed)
    words = [
        "expense", "receipt", "invoice", "amount", "total", "category", "merchant",
        "description", "notes", "approve", "reject", "categorise", "the", "a", "for", "of",
        "to", "and", "with", "on", "at", "in", "by", "is", "was", "please", "reply", "card",
        "paid", "EUR", "USD", "GBP", "trip", "client", "meeting", "team", "lunch", "dinner",
        "taxi", "hotel", "flight", "train", "subscription", "license", "laptop", "phone",
        "monitor", "fuel", "parking", "conference", "workspace", "user", "policy", "limit",
        "exceeds", "within", "missing", "attach", "PII", "token", "lookup", "result", "found",
    ]  # fmt: skip
    corpus = []
    for _ in range(lines):
        merchant, category = rng.choice(MERCHANTS), rng.choice(CATEGORIES)
        amount = f"{rng.randint(1, 2000)}.{rng.randint(0, 99):02d}"
        filler = " ".join(rng.choices(words, k=rng.randint(4, 14)))
        corpus.append(f"{merchant} {amount} {filler} category: {category}")
    return corpus


def build_tokenizer(corpus: list[str]):
    """A byte-level BPE tokenizer (any text encodes; no unknown tokens) with the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=UNK))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET,
        special_tokens=[PAD, BOS, EOS, UNK, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=ROLE_TOKENS,
        model_max_length=MAX_POSITIONS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build(directory: Path, *, seed: int = SEED) -> Path:
    """Build the tiny model and tokenizer into ``directory`` (replaced atomically); return it.

    Writes ``config.json``, ``model.safetensors``, the tokenizer files and ``pria_tiny.json``
    (what was built, for ``status`` and the registry's ``base_model``).
    """
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    tokenizer = build_tokenizer(synthetic_corpus(seed=seed))
    vocab_size = -(-len(tokenizer) // 64) * 64
    config = MistralConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        max_position_embeddings=MAX_POSITIONS,
        sliding_window=None,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = MistralForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        parameters = sum(p.numel() for p in model.parameters())
        (staging / "pria_tiny.json").write_text(
            json.dumps({"seed": seed, "parameters": parameters, "vocab_size": vocab_size})
        )
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def ensure(settings: Settings) -> Path:
    """The tiny model's directory, built on first use (a complete build has ``pria_tiny.json``)."""
    directory = settings.tiny_model_dir
    if not (directory / "pria_tiny.json").is_file():
        build(directory)
    return directory


def base_model_path(settings: Settings) -> str:
    """What ``from_pretrained`` loads: ``PRIA_BASE_MODEL``, or the tiny model built on demand."""
    if settings.base_model:
        return settings.base_model
    return str(ensure(settings))
