"""Exact count of what one forward pass keeps for the backward pass: the check behind the
memory model's activation term (``memory.estimate``), measured without a GPU.

``saved_bytes`` runs a forward under ``torch.autograd.graph.saved_tensors_hooks`` and adds up
the storages of every tensor autograd saves, each storage once (q, k and v projections save the
same input), leaving out the parameters, buffers and the inputs themselves, which exist
before the forward. ``layer_input_dtypes`` records the dtype of the hidden state entering each
decoder layer: what the residual stream is stored in.
"""

from __future__ import annotations

from typing import Any


def saved_bytes(model: Any, inputs: dict[str, Any], *, autocast_bf16: bool) -> int:
    """Bytes of the distinct storages autograd saves during ``model(**inputs)``.

    ``autocast_bf16`` runs the forward under bf16 autocast, as training does on a GPU.
    """
    import torch

    existing = {t.untyped_storage().data_ptr() for t in model.parameters()}
    existing |= {t.untyped_storage().data_ptr() for t in model.buffers()}
    existing |= {
        v.untyped_storage().data_ptr() for v in inputs.values() if isinstance(v, torch.Tensor)
    }
    storages: dict[int, int] = {}

    def pack(tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in existing and storage.data_ptr() != 0:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    device = next(model.parameters()).device.type
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=autocast_bf16)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        outputs = model(**inputs)
    del outputs
    return sum(storages.values())


def layer_input_dtypes(model: Any, inputs: dict[str, Any], *, autocast_bf16: bool) -> list[str]:
    """The dtype of the hidden state entering each decoder layer, in order."""
    import torch

    dtypes: list[str] = []
    layers = decoder_layers(model)
    handles = [
        layer.register_forward_pre_hook(
            lambda _module, args, kwargs: dtypes.append(
                str((args[0] if args else kwargs["hidden_states"]).dtype).removeprefix("torch.")
            ),
            with_kwargs=True,
        )
        for layer in layers
    ]
    device = next(model.parameters()).device.type
    try:
        with torch.no_grad(), torch.autocast(device, torch.bfloat16, enabled=autocast_bf16):
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return dtypes


def decoder_layers(model: Any) -> list[Any]:
    """The decoder layers of a (PEFT-wrapped) Mistral/Llama-shaped causal LM."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return list(base.model.layers)
