"""One process of the 2-process (gloo) training test: a real ``train.run`` under torchrun,
observed from the outside.

    python -m torch.distributed.run --nproc_per_node 2 tests/train/ddp_worker.py OUT DATE JSON

Observation only, nothing replaced: every gradient all-reduce DDP issues goes through a
counting comm hook (PyTorch's own ``allreduce_hook`` does the work), the arguments DDP is
built with are recorded, and the trainer's training and prediction steps record how many
forward passes each micro-batch arrived in. Each rank then writes its adapter weights and
what it saw to OUT.
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from pria_ml import train
from pria_ml.settings import Settings

seen: dict = {"allreduces": 0, "train_passes": [], "eval_passes": [], "ddp": None}
_ddp_init = DistributedDataParallel.__init__
_trainer_class = train._trainer_class


def _counting_ddp_init(self, *args, **kwargs):
    _ddp_init(self, *args, **kwargs)
    seen["ddp"] = {
        "find_unused_parameters": self.find_unused_parameters,
        "broadcast_buffers": self.broadcast_buffers,
    }

    def hook(state, bucket):
        seen["allreduces"] += 1
        return allreduce_hook(state, bucket)

    self.register_comm_hook(None, hook)


def _observed_trainer_class() -> type:
    class Observed(_trainer_class()):
        def training_step(self, model, inputs, num_items_in_batch=None):
            seen["train_passes"].append(len(inputs.get("chunks", [inputs])))
            return super().training_step(model, inputs, num_items_in_batch)

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            seen["eval_passes"].append(len(inputs.get("chunks", [inputs])))
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    return Observed


def main() -> None:
    out, date, overrides = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    DistributedDataParallel.__init__ = _counting_ddp_init
    train._trainer_class = _observed_trainer_class
    config = train.PROFILES["demo"].with_overrides(**overrides)
    result = train.run(Settings(), datetime.date.fromisoformat(date), config)
    rank = result.metrics.get("process_index", 0)
    weights = {
        name: p.detach().contiguous()
        for name, p in result.model.named_parameters()
        if p.requires_grad
    }
    save_file(weights, str(out / f"rank{rank}.safetensors"))
    seen.update(
        steps=result.metrics["steps"],
        eval_loss=result.metrics["loss"]["eval"],
        registered=result.adapter_id is not None,
        world=torch.distributed.get_world_size(),
    )
    (out / f"rank{rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
