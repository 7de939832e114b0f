"""Peak GPU memory of a QLoRA night, estimated from the model's shape before any weight loads.

The model is docs/training.md's "Memory model": static parts (the 4-bit base, the layers kept
in higher precision, the adapter, its gradients and optimizer states) plus parts that grow with
the tokens of one micro-batch (checkpointed layer inputs, one layer's recomputed activations,
the logits of the labelled positions). ``estimate`` is pure arithmetic on a ``ModelShape``;
``train.plan`` calls it for the configured tier's GPU and refuses a plan that cannot fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pria_ml.errors import ConfigError

GIB = 2**30
LINEAR_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# NF4 stores 4 bits per weight, plus one absmax per 64-weight block quantised to 8 bits and one
# fp32 scale per 256 blocks (double quantisation): 0.5 + 1/64 + 4/(64 x 256) bytes per weight.
NF4_BYTES_PER_WEIGHT = 0.5 + 1 / 64 + 4 / (64 * 256)
# Headroom for the CUDA context, the caching allocator's fragmentation and bitsandbytes'
# transient dequantised weight (the largest projection in bf16, 117 MB on Mistral-7B).
OVERHEAD_GIB = 0.75


@dataclass(frozen=True)
class ModelShape:
    """What the estimates need from a Mistral/Llama-shaped config (``config.json``)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool = False

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        head_dim = getattr(config, "head_dim", None) or (
            config.hidden_size // config.num_attention_heads
        )
        return cls(
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=getattr(config, "num_key_value_heads", None)
            or config.num_attention_heads,
            head_dim=head_dim,
            vocab_size=config.vocab_size,
            tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        )

    def projection_shapes(self) -> dict[str, tuple[int, int]]:
        """``(in, out)`` features of each linear projection of one decoder layer."""
        hidden, inter = self.hidden_size, self.intermediate_size
        q = self.num_attention_heads * self.head_dim
        kv = self.num_key_value_heads * self.head_dim
        return {
            "q_proj": (hidden, q),
            "k_proj": (hidden, kv),
            "v_proj": (hidden, kv),
            "o_proj": (q, hidden),
            "gate_proj": (hidden, inter),
            "up_proj": (hidden, inter),
            "down_proj": (inter, hidden),
        }

    @property
    def linear_parameters(self) -> int:
        """Weights of the decoder layers' projections: what bitsandbytes quantises."""
        per_layer = sum(i * o for i, o in self.projection_shapes().values())
        return per_layer * self.num_hidden_layers

    @property
    def unquantised_parameters(self) -> int:
        """Embeddings, ``lm_head`` (unless tied) and RMSNorm weights: kept in 16/32 bits."""
        embeddings = self.vocab_size * self.hidden_size
        lm_head = 0 if self.tie_word_embeddings else embeddings
        norms = (2 * self.num_hidden_layers + 1) * self.hidden_size
        return embeddings + lm_head + norms

    @property
    def parameters(self) -> int:
        return self.linear_parameters + self.unquantised_parameters

    def lora_parameters(self, r: int, targets: tuple[str, ...] = ("all-linear",)) -> int:
        """LoRA parameters: ``r x (in + out)`` per adapted projection of every layer.

        ``all-linear`` means every projection in a decoder layer (PEFT leaves ``lm_head``
        out). For Mistral-7B a layer has r x 81,920 adapter parameters, so rank 64 is
        167,772,160 (~168 M) and rank 32 is 83,886,080: the spec's "~85 M" matches rank 32.
        """
        shapes = self.projection_shapes()
        chosen = LINEAR_PROJECTIONS if "all-linear" in targets else targets
        unknown = sorted(set(chosen) - set(shapes))
        if unknown:
            raise ConfigError(
                f"--lora-target-modules {','.join(unknown)} is not a projection of a "
                f"Mistral-shaped layer; use all-linear or some of {', '.join(shapes)}"
            )
        return r * sum(sum(shapes[name]) for name in chosen) * self.num_hidden_layers


# The share of the activation term the estimate may be off by: the saved-activation count on
# the tiny model (tests/train/test_train_memory.py) holds it to within this, several configs.
ACTIVATION_TOLERANCE = 0.10
# The overhead is the least known part: the CUDA context (~0.3-0.5 GiB), the caching
# allocator's fragmentation, bitsandbytes' transient dequantised weight.
OVERHEAD_BAND_GIB = (0.5, 1.25)


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak GPU memory of one training process, in GiB, by part, with an error band."""

    base_4bit: float
    unquantised_layers: float
    adapter_weights: float
    adapter_gradients: float
    optimizer_states: float
    ddp_buckets: float
    checkpointed_activations: float
    layer_activations: float
    backward_transient: float
    logits: float
    overhead: float
    micro_batch_tokens: int

    @property
    def static(self) -> float:
        return (
            self.base_4bit
            + self.unquantised_layers
            + self.adapter_weights
            + self.adapter_gradients
            + self.optimizer_states
            + self.ddp_buckets
        )

    @property
    def activations(self) -> float:
        """What grows with the tokens of one forward pass."""
        return (
            self.checkpointed_activations
            + self.layer_activations
            + self.backward_transient
            + self.logits
        )

    @property
    def total(self) -> float:
        return self.static + self.activations + self.overhead

    @property
    def low(self) -> float:
        """Lower end of the band: activations 10 % under, the least overhead."""
        return self.static + (1 - ACTIVATION_TOLERANCE) * self.activations + OVERHEAD_BAND_GIB[0]

    @property
    def high(self) -> float:
        """Upper end of the band: activations 10 % over, the most overhead. Plans are judged
        by this end."""
        return self.static + (1 + ACTIVATION_TOLERANCE) * self.activations + OVERHEAD_BAND_GIB[1]

    def as_dict(self) -> dict[str, float | int]:
        return {
            **{k: round(v, 3) for k, v in asdict(self).items()},
            "total": round(self.total, 3),
            "band": [round(self.low, 3), round(self.high, 3)],
        }


def saved_bytes_per_token(
    shape: ModelShape,
    *,
    lora_r: int,
    lora_targets: tuple[str, ...],
    lora_dropout: float,
    platform: str = "cuda",
) -> tuple[float, float]:
    """``(one decoder layer, outside the layers)``: bytes autograd keeps per token for the
    backward pass, training under bf16 autocast with the norms in bf16 (``train.add_adapter``).

    Tensor by tensor, as counted with ``saved_tensors_hooks`` (docs/training.md, "Memory model"):
    each RMSNorm keeps an fp32 copy of its input and the fp32 reciprocal RMS; attention keeps
    the rotated q, k, v, its output and the fp32 log-sum-exp per head; the SwiGLU MLP keeps the
    gate output, the activation and the up output. The frozen 4-bit projections keep nothing
    (no weight gradient); each LoRA keeps its input and its rank-r ``lora_A`` output. Inputs
    are shared: q, k and v read one tensor, gate and up another.

    ``platform`` "cpu" accounts for what differs there: PEFT checks only CUDA's autocast, so on
    a CPU every LoRA casts its input to fp32 and autocast casts it back, a bf16 copy per
    adapted projection; and a CPU dropout keeps an fp32 noise tensor where CUDA keeps a 1-byte
    mask beside its bf16 output.
    """
    if platform not in ("cuda", "cpu"):
        raise ValueError(f"platform must be cuda or cpu, got {platform!r}")
    h, inter = shape.hidden_size, shape.intermediate_size
    q = shape.num_attention_heads * shape.head_dim
    kv = shape.num_key_value_heads * shape.head_dim
    chosen = set(LINEAR_PROJECTIONS if "all-linear" in lora_targets else lora_targets)
    inputs = {name: i for name, (i, _) in shape.projection_shapes().items() if name in chosen}

    norm = 4 * h + 4
    layer = 2 * norm
    layer += 2 * q + 2 * 2 * kv + 4 * shape.num_attention_heads + 2 * q  # attention
    layer += 3 * 2 * inter  # gate output, activation, up output
    layer += sum(2 * lora_r for _ in inputs)  # lora_A outputs
    if lora_dropout > 0:
        per_input = 3 if platform == "cuda" else 6  # CUDA: mask + bf16 output; CPU: fp32 noise
        layer += sum(per_input * i for i in inputs.values())
    elif platform == "cpu":
        layer += sum(2 * i for i in inputs.values())
    else:
        shared = {"attention": {"q_proj", "k_proj", "v_proj"}, "mlp": {"gate_proj", "up_proj"}}
        layer += sum(2 * h for group in shared.values() if group & chosen)
        layer += sum(2 * inputs[name] for name in ("o_proj", "down_proj") if name in inputs)
    return float(layer), float(norm)


def estimate(
    shape: ModelShape,
    *,
    lora_r: int,
    lora_targets: tuple[str, ...],
    micro_batch_tokens: int,
    labelled_share: float,
    gradient_checkpointing: bool,
    optimizer: str,
    lora_dropout: float = 0.05,
    processes: int = 1,
) -> MemoryEstimate:
    """Peak memory of one process training ``micro_batch_tokens`` tokens at a time.

    ``labelled_share`` is the share of tokens that carry a label: only their logits are
    computed. ``optimizer`` is a ``TrainingArguments.optim`` name (``paged_adamw_8bit`` keeps
    two 8-bit states per parameter, ``adamw_torch`` two fp32 ones). With ``processes`` > 1,
    DDP keeps its gradient buckets: a second fp32 copy of the adapter's gradients.
    """
    h, layers = shape.hidden_size, shape.num_hidden_layers
    lora = shape.lora_parameters(lora_r, lora_targets)
    state_bytes = 2 if optimizer.endswith("8bit") else 8
    layer, outside = saved_bytes_per_token(
        shape, lora_r=lora_r, lora_targets=lora_targets, lora_dropout=lora_dropout
    )
    if gradient_checkpointing:
        # Each layer keeps only its bf16 input; the layer being recomputed holds its full set.
        checkpointed = layers * h * 2
        working = layer
    else:
        checkpointed = 0
        working = layers * layer
    # While one layer's backward runs: the gradients of the MLP's three intermediate tensors.
    transient = 3 * 2 * shape.intermediate_size
    # Labelled positions only: bf16 logits, their fp32 upcast for the loss, the fp32 gradient.
    logits = labelled_share * shape.vocab_size * (2 + 4 + 4)
    return MemoryEstimate(
        base_4bit=shape.linear_parameters * NF4_BYTES_PER_WEIGHT / GIB,
        unquantised_layers=shape.unquantised_parameters * 2 / GIB,
        adapter_weights=lora * 4 / GIB,
        adapter_gradients=lora * 4 / GIB,
        optimizer_states=lora * state_bytes / GIB,
        ddp_buckets=lora * 4 / GIB if processes > 1 else 0.0,
        checkpointed_activations=micro_batch_tokens * checkpointed / GIB,
        layer_activations=micro_batch_tokens * (working + outside) / GIB,
        backward_transient=micro_batch_tokens * transient / GIB,
        logits=micro_batch_tokens * logits / GIB,
        overhead=OVERHEAD_GIB,
        micro_batch_tokens=micro_batch_tokens,
    )
