"""FSDP2 on CPU processes. transformers hands the `fsdp` mode to accelerate as an FSDP2 plugin, but accelerate turns
FSDP on only for accelerator process groups (CUDA, XPU, ...): with several CPU processes (gloo) it would quietly
train plain data-parallel. fully_shard itself runs on CPU tensors over gloo, so here the same plugin is switched on
for a CPU run before training prepares the model; on GPUs accelerate has done it already and nothing changes."""
from __future__ import annotations


def enable_on_cpu(trainer) -> bool:
    """Switch the trainer's accelerate state to FSDP with the run's FSDP2 plugin; True when it did."""
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    args, state = trainer.args, trainer.accelerator.state
    if not args.fsdp or getattr(state, "fsdp_plugin", None) is not None \
            or state.distributed_type != DistributedType.MULTI_CPU:
        return False
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    trainer.is_fsdp_enabled = True
    return True
