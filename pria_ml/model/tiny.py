"""A tiny Mistral-architecture base model and tokenizer, built locally.

Tests, the demo and a fresh machine with no ``PRIA_BASE_MODEL`` train on this model instead of
Mistral-7B-Instruct. Nothing is downloaded: it is saved with ``save_pretrained`` and loaded back
through the same ``from_pretrained`` path production uses, so the 4-bit loading, LoRA and
adapter code is exercised for real.

A random-initialised model cannot learn PRIA's task in a demo's minutes, so by default the
build pre-trains it briefly (``pretrain``: full weights, deterministic) on synthetic
conversations that end in the seeded agent's *own* actions (``seed.draw_case``): the action
format, the merchant, and the agent's systematic mistakes (trap merchants, client meals filed
as meals, a little noise). The bare base then behaves like PRIA's agent before any adapter, and
an adapter has real mistakes to correct. ``pretrain_steps=0`` keeps the random-initialised
model (``PRIA_TINY_PRETRAIN_STEPS=0``), the fast path unit tests use. The tokenizer's merges
are learnt from expense chatter plus those conversations, so a seeded conversation is about 240
to 275 tokens rather than 540.

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

from pria_ml.data.privacy import Pseudonymiser
from pria_ml.model import weights
from pria_ml.model.chat import IGNORE_INDEX, tokenize_example
from pria_ml.noise import quiet_known_library_noise
from pria_ml.world import seed as seeder

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
# Pre-training on the seeded agent's conversations (``pretrain``); measured in docs/demo.md.
PRETRAIN_STEPS = 220  # the demo's and `model build-tiny`'s default
PRETRAIN_BATCH = 8
# Most steps see only the user's message (about 40 tokens instead of 250, so many more updates
# fit the budget: 40 steps of full conversations taught the format but not one right merchant,
# docs/demo.md); FULL_SHARE of the steps, spread evenly, see whole conversations.
SHORT_BATCH = 16
FULL_SHARE = 0.1
PRETRAIN_LR = 3e-3
# The prompt's tokens teach structure for free (the merchant's second mention is a copy of the
# first), so they count too, at a fifth of the weight of the action's tokens.
PROMPT_LOSS_WEIGHT = 0.2
TOKENIZER_CONVERSATIONS = 200

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|tool|>", "<|assistant|>", "<|end|>"]

# One turn per message: a role marker, the content, an end marker. Assistant turns end with EOS
# so generation stops after the action. System and tool turns are first-class here; the real
# Mistral-7B-Instruct template rejects them, which pria_ml.model.chat handles.
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


def conversations(
    count: int, seed: int = SEED, *, user_only: bool = False
) -> list[tuple[list[dict[str, str]], str]]:
    """``count`` (prompt, seeded agent action) pairs drawn by the seeder's own generator.

    Every other prompt is scrubbed the way extraction scrubs it (identifier fields removed, PII
    replaced by tokens such as ``<EMAIL_3f2a9c1b>``), so the base meets both what production
    serves (raw text) and what evaluation replays (extracted datasets). ``user_only`` keeps
    only the user's message (the seeded agent's answer depends on the merchant alone): an
    eighth of the tokens, for the first phase of ``pretrain``.
    """
    import datetime as dt

    rng = random.Random(seed)
    population = seeder.Population(rng, max(count, 50))
    scrubber = Pseudonymiser(b"pria-tiny-pretraining")
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    pairs = []
    for index in range(count):
        user = rng.choice(population.users)
        case = seeder.draw_case(rng, user, rng.choice(population.merchants), at)
        prompt = case.prompt
        if user_only:
            text = prompt[1]["content"]
            content = scrubber.pseudonymise(text) if index % 2 else text
            prompt = [{"role": "user", "content": content}]
        elif index % 2:
            trace = scrubber.strip_identifiers(case.trace)
            prompt = [
                {"role": m["role"], "content": scrubber.scrub_text(m["content"])}
                for m in trace["messages"]
            ]
        pairs.append((prompt, case.seeded_action))
    return pairs


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


def build(
    directory: Path, *, seed: int = SEED, pretrain_steps: int = PRETRAIN_STEPS, progress=None
) -> Path:
    """Build the tiny model and tokenizer into ``directory`` (replaced atomically); return it.

    ``pretrain_steps`` > 0 pre-trains the weights on the seeded agent's conversations
    (``pretrain``); ``progress(step, total, loss)`` is called as it goes. Writes
    ``config.json``, ``model.safetensors``, the tokenizer files and ``pria_tiny.json`` (the
    recipe that was built, for ``ensure`` and ``status``).
    """
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    quiet_known_library_noise()
    chats = conversations(TOKENIZER_CONVERSATIONS, seed=seed + 1)
    corpus = synthetic_corpus(seed=seed)
    corpus += ["\n".join([*(m["content"] for m in prompt), action]) for prompt, action in chats]
    tokenizer = build_tokenizer(corpus)
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
    recipe = {"seed": seed, "pretrain_steps": pretrain_steps}
    if pretrain_steps:
        recipe["pretraining"] = pretrain(model, tokenizer, pretrain_steps, seed, progress)

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        parameters = sum(p.numel() for p in model.parameters())
        recipe.update(parameters=parameters, vocab_size=vocab_size)
        (staging / "pria_tiny.json").write_text(json.dumps(recipe))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def built_recipe(directory: Path) -> dict | None:
    """What ``build`` recorded in ``directory``; None when no complete build is there."""
    try:
        return json.loads((Path(directory) / "pria_tiny.json").read_text())
    except (OSError, ValueError):
        return None


def ensure(settings: Settings, progress=None, *, pretrained: bool = False) -> Path:
    """The tiny model's directory, built on first use with ``settings.tiny_pretrain_steps``.

    An existing build is kept whatever its recipe (``pria-ml model build-tiny`` rebuilds), so
    processes with other settings never rebuild it under each other; ``pretrained`` rebuilds
    one that was not pre-trained (the demo needs the agent-like base), with the settings' steps
    or ``PRETRAIN_STEPS`` when those are 0.
    """
    directory = settings.tiny_model_dir
    recipe = built_recipe(directory)
    if recipe is None or (pretrained and not recipe.get("pretrain_steps")):
        steps = settings.tiny_pretrain_steps or (PRETRAIN_STEPS if pretrained else 0)
        build(directory, pretrain_steps=steps, progress=progress)
    return directory


def pretrain(model, tokenizer, steps: int, seed: int = SEED, progress=None) -> dict:
    """Full-weight training of ``model`` on the seeded agent's conversations, in place.

    The loss weights the action's tokens fully and the prompt's at ``PROMPT_LOSS_WEIGHT``. Plain
    AdamW with linear warm-up and decay, examples in a fixed order, one thread count: the same
    ``seed`` and ``steps`` give the same weights. Returns figures for ``pria_tiny.json``.
    """
    import time

    import torch

    started = time.monotonic()
    full_steps = max(1, round(steps * FULL_SHARE))
    short = conversations((steps - full_steps) * SHORT_BATCH, seed=seed + 2, user_only=True)
    full = conversations(full_steps * PRETRAIN_BATCH, seed=seed + 3)
    tokenized = [tokenize_example(tokenizer, prompt, action) for prompt, action in short + full]
    cut = len(short)
    short_batches = [tokenized[i : i + SHORT_BATCH] for i in range(0, cut, SHORT_BATCH)]
    full_batches = [
        tokenized[i : i + PRETRAIN_BATCH] for i in range(cut, len(tokenized), PRETRAIN_BATCH)
    ]
    batches = interleave(short_batches, full_batches)
    optimizer = torch.optim.AdamW(model.parameters(), lr=PRETRAIN_LR, weight_decay=0.0)
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.05, (steps - step) / (steps - warmup + 1))),
    )
    pad = tokenizer.pad_token_id
    model.train()
    loss_value = float("nan")
    for step, batch in enumerate(batches):
        width = max(len(example.input_ids) for example in batch)
        input_ids = torch.full((len(batch), width), pad)
        weights = torch.zeros((len(batch), width))
        for row, example in enumerate(batch):
            size = len(example.input_ids)
            input_ids[row, :size] = torch.tensor(example.input_ids)
            action = torch.tensor([label != IGNORE_INDEX for label in example.labels])
            weights[row, :size] = torch.where(action, 1.0, PROMPT_LOSS_WEIGHT)
        logits = model(input_ids=input_ids, attention_mask=(weights > 0).long()).logits
        token_loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            input_ids[:, 1:].reshape(-1),
            reduction="none",
        ).view(len(batch), width - 1)
        shifted = weights[:, 1:]
        loss = (token_loss * shifted).sum() / shifted.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if progress is not None:
            progress(step + 1, steps, loss_value)
    model.eval()
    return {
        "examples": {"user_message_only": len(short), "full_conversation": len(full)},
        "batch_size": {"user_message_only": SHORT_BATCH, "full_conversation": PRETRAIN_BATCH},
        "learning_rate": PRETRAIN_LR,
        "final_loss": round(loss_value, 4),
        "seconds": round(time.monotonic() - started, 1),
    }


def interleave(many: list, few: list) -> list:
    """``many`` with ``few`` spread evenly among them, the last of ``few`` last.

    Whole conversations placed only at the end (a curriculum) undid what the short phase had
    taught: the loss jumped from 0.23 to 6.5 on the first long batch and the bare base then
    answered every benchmark question with the same category (docs/demo.md).
    """
    merged: list = []
    every = len(many) / max(len(few), 1)
    for index, item in enumerate(few):
        merged += many[round(index * every) : round((index + 1) * every)]
        merged.append(item)
    return merged + many[round(len(few) * every) :]


def base_model_path(settings: Settings) -> str:
    """What ``from_pretrained`` loads: ``PRIA_BASE_MODEL`` (a hub id at its pinned revision
    resolves to its verified snapshot, downloaded once: ``weights``), or the tiny model built
    on demand."""
    if settings.base_model:
        return weights.base_model_source(settings)
    return str(ensure(settings))
