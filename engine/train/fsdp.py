"""FSDP2 on CPU processes. transformers hands the `fsdp` mode to accelerate as an FSDP2 plugin, but accelerate turns
FSDP on only for accelerator process groups (CUDA, XPU, ...): with several CPU processes (gloo) it would quietly
train plain data-parallel. fully_shard itself runs on CPU tensors over gloo, so here the same plugin is switched on
for a CPU run before training prepares the model; on GPUs accelerate has done it already and nothing changes."""
from __future__ import annotations

from ..errors import UserError


def enable_on_cpu(trainer) -> bool:
    """Switch the trainer's accelerate state to FSDP with the run's FSDP2 plugin; True when it did."""
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
    args, state = trainer.args, trainer.accelerator.state
    if not args.fsdp or getattr(state, "fsdp_plugin", None) is not None \
            or state.distributed_type != DistributedType.MULTI_CPU:
        return False
    model = trainer.model
    emb_in = getattr(model, "get_input_embeddings", lambda: None)()
    emb_out = getattr(model, "get_output_embeddings", lambda: None)()
    if emb_in is not None and emb_out is not None and getattr(emb_in, "weight", None) is getattr(emb_out, "weight", 0):
        # measured: accelerate's FSDP2 grouping of a tied embedding + head makes the gloo collectives of the two
        # processes disagree (an abort, not an error message)
        raise UserError("fsdp: on CPU processes FSDP2 cannot shard a model whose input embeddings and LM head share "
                        "their weights (tie_word_embeddings, as SmolLM2); leave fsdp empty to train data-parallel, "
                        "or use GPUs.")
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    if state.mixed_precision != "no":
        plugin.set_mixed_precision(state.mixed_precision)
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    trainer.is_fsdp_enabled = True
    trainer.accelerator.get_state_dict = full_state_dict
    return True


def full_state_dict(model, unwrap: bool = True) -> dict:
    """The whole weights gathered from the shards onto rank 0 (an empty dict elsewhere), for save_pretrained: what
    accelerate's own gathering gives on GPUs (on CPU its tensors have no storage safetensors can write)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
