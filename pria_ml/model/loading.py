"""Loading the base model and its adapters: one place for training, evaluation and serving.

Training loads the base with ``load_base_model`` and adds a fresh adapter; evaluation and the
simulated agent load a *registered* adapter with ``load_for_inference``, which verifies the
artifact's sha256 against its ``model_registry`` row before any weight is used. The base model is
always loaded the same way: 4-bit NF4 with double quantisation (QLoRA's storage format).
"""

from __future__ import annotations

import datetime
import logging
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import registry
from pria_ml.data.contract import adapter_keys
from pria_ml.data.storage import open_storage, sha256_file
from pria_ml.db import database
from pria_ml.errors import ArtifactMismatch, ConfigError
from pria_ml.model import tiny as tinymodel
from pria_ml.noise import quiet_known_library_noise

if TYPE_CHECKING:
    from pria_ml.data.storage import Storage
    from pria_ml.registry import Adapter
    from pria_ml.settings import Settings

log = logging.getLogger(__name__)


# Base model ----------------------------------------------------------------------------------
def model_config(path: str | Path, refusal: str) -> Any:
    """The transformers config at ``path``; ConfigError ``refusal: <why>`` when it cannot be
    read (``refusal`` names the setting and what to do)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{refusal}: {exc}") from None


def check_causal_lm(base_model: str) -> None:
    """ConfigError unless ``base_model`` is a loadable causal-LM config with a chat template."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = model_config(
        base_model,
        f"PRIA_BASE_MODEL={base_model!r} is not a model directory or an available hub id "
        "(nothing is downloaded at run time; pre-fetch it into a directory)",
    )
    architectures = config.architectures or []
    if (architectures and not any(a.endswith("ForCausalLM") for a in architectures)) or (
        config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    ):
        raise ConfigError(
            f"PRIA_BASE_MODEL={base_model!r} is a {config.model_type} model "
            f"({', '.join(architectures) or 'no architecture'}), not a causal language model"
        )


def load_tokenizer(base_model: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if not tokenizer.chat_template:
        raise ConfigError(f"the tokenizer of {base_model!r} has no chat template")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(
    base_model: str, attn_implementation: str = "sdpa", *, gpu_precision: bool | None = None
) -> Any:
    """The base model in 4-bit NF4 with double quantisation (QLoRA's storage format).

    Compute runs in bf16 on a GPU and in fp32 on a CPU (bf16 matmuls are slow there);
    ``gpu_precision=True`` loads a CPU copy with the GPU's dtypes (the memory model's
    saved-activation count does this). Under
    ``accelerate launch`` each process loads its copy onto its own GPU. Training passes
    ``flash_attention_2`` where it is installed, for padding-free packing (``train``).
    """
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quiet_known_library_noise()
    cuda = torch.cuda.is_available()
    bf16 = cuda if gpu_precision is None else gpu_precision
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float32,
    )
    device_map = None
    if cuda:
        from accelerate import PartialState

        device_map = {"": PartialState().local_process_index}
    return AutoModelForCausalLM.from_pretrained(
        base_model,
        quantization_config=quantization,
        dtype=torch.bfloat16 if bf16 else torch.float32,
        device_map=device_map,
        attn_implementation=attn_implementation,
    )


# Adapters -----------------------------------------------------------------------------------
def download_adapter(
    storage: Storage, date: datetime.date, directory: Path, attempt: int = 1
) -> Path:
    """Fetch attempt ``attempt`` of ``adapters/D.*`` into ``directory`` in the layout
    ``PeftModel.from_pretrained`` reads (``adapter_model.safetensors`` +
    ``adapter_config.json``); return ``directory``.

    ``adapter_config.json`` names the base model (``base_model_name_or_path``).
    """
    weights_key, config_key = adapter_keys(date, attempt)
    directory.mkdir(parents=True, exist_ok=True)
    storage.download(weights_key, directory / "adapter_model.safetensors")
    storage.download(config_key, directory / "adapter_config.json")
    return directory


def load_adapter(base_model: str, adapter_dir: Path) -> Any:
    """The 4-bit base model with the adapter in ``adapter_dir`` applied, in eval mode."""
    quiet_known_library_noise()  # before peft, which imports bitsandbytes
    from peft import PeftModel

    model = PeftModel.from_pretrained(load_base_model(base_model), str(adapter_dir))
    model.eval()
    return model


# Registered adapters -------------------------------------------------------------------------
def fetch_registered(
    settings: Settings, adapter_id: uuid.UUID | str, directory: Path
) -> tuple[Adapter, Path]:
    """Download a registered adapter into ``directory`` and check it is what was registered.

    Reads the ``model_registry`` row, downloads its attempt's ``adapters/D[.aN].safetensors``
    and config, and
    compares the weights' sha256 with the row's ``artifact_sha256``. Raises RegistryError (no
    such adapter), StorageError (missing object) or ArtifactMismatch (the stored weights are not
    the registered ones); nothing is recorded anywhere.
    """

    adapter = registry.get_adapter(database(settings), adapter_id)
    storage = open_storage(settings)
    weights_key, _ = adapter_keys(adapter.dataset_date, adapter.attempt)
    if adapter.artifact_uri != storage.uri(weights_key):
        raise ArtifactMismatch(
            f"adapter {adapter.adapter_id} was registered at {adapter.artifact_uri}, which is not "
            f"{storage.uri(weights_key)} in the configured storage; point PRIA_STORAGE_URL at the "
            "storage it was trained into"
        )
    download_adapter(storage, adapter.dataset_date, directory, adapter.attempt)
    actual = sha256_file(directory / "adapter_model.safetensors")
    if actual != adapter.artifact_sha256:
        raise ArtifactMismatch(
            f"{adapter.artifact_uri} has sha256 {actual}, but adapter {adapter.adapter_id} was "
            f"registered with {adapter.artifact_sha256}: the stored weights were changed or "
            "corrupted; restore the object or train that date again"
        )
    return adapter, directory


@dataclass
class Loaded:
    """A model ready for generation: the base, with ``adapter`` applied (None = bare base)."""

    model: Any
    tokenizer: Any
    adapter: Adapter | None
    base_model: str


def load_for_inference(settings: Settings, adapter_id: uuid.UUID | str | None) -> Loaded:
    """The base model in 4-bit with the registered adapter ``adapter_id`` (verified by sha256),
    in eval mode; ``None`` loads the bare base model.

    The base is ``PRIA_BASE_MODEL`` (or the tiny local model); an adapter trained on another
    base is a ConfigError.
    """

    base_model = tinymodel.base_model_path(settings)
    tokenizer = load_tokenizer(base_model)
    if adapter_id is None:
        model = load_base_model(base_model)
        model.eval()
        return Loaded(model, tokenizer, None, base_model)
    with tempfile.TemporaryDirectory(prefix="pria-adapter-") as scratch:
        adapter, directory = fetch_registered(settings, adapter_id, Path(scratch))
        if adapter.base_model != base_model:
            raise ConfigError(
                f"adapter {adapter.adapter_id} was trained on {adapter.base_model!r}, but the "
                f"configured base model is {base_model!r}; set PRIA_BASE_MODEL to the base it "
                "was trained on"
            )
        model = load_adapter(base_model, directory)
    return Loaded(model, tokenizer, adapter, base_model)


# Two adapters on one base (evaluation) -------------------------------------------------------
@dataclass
class Comparison:
    """One 4-bit base in memory carrying the candidate adapter and, when there is one, the
    baseline adapter; ``use(name)`` switches between them without reloading anything."""

    model: Any
    tokenizer: Any
    candidate: Adapter
    baseline: Adapter | None
    base_model: str

    @contextmanager
    def use(self, name: str) -> Iterator[Any]:
        """Make ``"candidate"`` or ``"baseline"`` the active adapter for the ``with`` block.

        The baseline without an adapter (no prod yet) is the bare base model: the candidate's
        adapter is disabled inside the block.
        """
        if name == "baseline" and self.baseline is None:
            with self.model.disable_adapter():
                yield self.model
            return
        if name not in ("candidate", "baseline"):
            raise ValueError(f"no adapter {name!r}; use 'candidate' or 'baseline'")
        self.model.set_adapter(name)
        yield self.model


def load_for_comparison(
    settings: Settings, candidate_id: uuid.UUID | str, baseline_id: uuid.UUID | str | None
) -> Comparison:
    """The base model with the candidate (adapter name ``candidate``) and the baseline
    (``baseline``; None = bare base) loaded side by side, both verified by sha256, eval mode.

    Raises what ``fetch_registered`` raises, and ConfigError when an adapter was trained on
    another base model than the configured one.
    """
    quiet_known_library_noise()  # before peft, which imports bitsandbytes
    from peft import PeftModel

    with tempfile.TemporaryDirectory(prefix="pria-compare-") as scratch:
        candidate, candidate_dir = fetch_registered(
            settings, candidate_id, Path(scratch) / "candidate"
        )
        baseline = baseline_dir = None
        if baseline_id is not None:
            baseline, baseline_dir = fetch_registered(
                settings, baseline_id, Path(scratch) / "baseline"
            )
        base_model = tinymodel.base_model_path(settings)
        tokenizer = load_tokenizer(base_model)
        for adapter in filter(None, (candidate, baseline)):
            if adapter.base_model != base_model:
                raise ConfigError(
                    f"adapter {adapter.adapter_id} was trained on {adapter.base_model!r}, but "
                    f"the configured base model is {base_model!r}; set PRIA_BASE_MODEL to the "
                    "base it was trained on"
                )
        model = PeftModel.from_pretrained(
            load_base_model(base_model), str(candidate_dir), adapter_name="candidate"
        )
        if baseline_dir is not None:
            model.load_adapter(str(baseline_dir), adapter_name="baseline")
    model.eval()
    model.set_adapter("candidate")
    return Comparison(model, tokenizer, candidate, baseline, base_model)
