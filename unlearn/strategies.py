"""Distributed strategies that need Python objects Hydra cannot write: FSDP's wrap units are classes."""

from __future__ import annotations

import gc
import importlib
import re

import torch
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.strategies.fsdp import _setup_activation_checkpointing
from lightning.pytorch.trainer.states import TrainerStatus
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper
from torch.distributed.fsdp import (FullOptimStateDictConfig, FullStateDictConfig, FullyShardedDataParallel,
                                    OptimStateKeyType, StateDictType)


def import_class(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"model.fsdp_layers: cannot import {dotted!r} ({e})") from e


def fsdp_strategy(layers: list[str], activation_checkpointing: bool = True, sharding_strategy: str = "FULL_SHARD",
                  cpu_offload: bool = False, state_dict_type: str = "full"):
    """Lightning FSDP sharding each transformer block (`model.fsdp_layers`), optionally recomputing their
    activations in backward. `state_dict_type=full` so checkpoints and saved models load anywhere. Each Trainer
    leaves the model whole again (WholeModelFSDP)."""
    if not layers:
        raise ValueError("trainer=fsdp needs model.fsdp_layers: the transformer block classes to shard")
    classes = {import_class(c) for c in layers}
    return WholeModelFSDP(layer_classes=tuple(classes), auto_wrap_policy=classes, activation_checkpointing_policy=classes
                          if activation_checkpointing else None, sharding_strategy=sharding_strategy,
                          cpu_offload=cpu_offload, state_dict_type=state_dict_type, use_orig_params=True)


class WholeModelFSDP(FSDPStrategy):
    """Lightning's FSDPStrategy, with three changes.

    - Each Trainer leaves the model as it found it: whole, unwrapped (`whole_modules` at a finished run's
      teardown). A run uses several Trainers on one model (the evaluation before, the method, the evaluation
      after). Lightning's FSDP wraps the model's blocks in place and leaves them so. The next Trainer then
      found the model already wrapped: it wrapped nothing more, so the parameters outside the blocks were not
      sharded and their gradients not reduced across ranks. KL's and NPO's frozen reference could not be copied
      ("cannot pickle 'module' object", seen on an H200 on 2026-12-04), and the model was saved from sharded
      views.
    - `trainer.gradient_clip_val` clips by the norm over every shard (the root unit's clip_grad_norm_, as torch's
      FSDP documents); Lightning's FSDP refuses norm clipping, so trainer=fsdp (clip 1.0) could not train at all.
    - On CPU (`trainer=fsdp_sim`, gloo) it shards too: Lightning refuses FSDP on CPU (it checks for its own
      class exactly), and torch's FSDP shards on CPU when given the device. So the CPU suite runs the FSDP paths.
    """

    def __init__(self, *args, layer_classes: tuple = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.layer_classes = layer_classes

    def _setup_model(self, model):
        # a block class the model does not have wrapped nothing, silently: one unsharded unit, nothing recomputed
        # (until 2026-12-05, a Qwen2.5-VL checkpoint under the Qwen2-VL config)
        if self.layer_classes and not any(isinstance(m, self.layer_classes) for m in model.modules()):
            raise ValueError(f"model.fsdp_layers={[c.__name__ for c in self.layer_classes]}: no module of this model "
                             f"is one of them; name its transformer block class")
        if self.root_device.type != "cpu":
            return super()._setup_model(model)
        # Lightning's, with the device named (it passes the device index, None on CPU)
        if not any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
            model = FullyShardedDataParallel(module=model, cpu_offload=self.cpu_offload,
                                             mixed_precision=self.mixed_precision_config,
                                             sharding_strategy=self.sharding_strategy,
                                             device_id=torch.device("cpu"), **self.kwargs)
        _setup_activation_checkpointing(model, self._activation_checkpointing_kwargs)
        return model

    # on CPU, Lightning's full state dict (offloaded "to CPU", rank 0 only) crashed rank 0 (a segfault in FSDP's
    # clone of the gathered tensors, torch 2.13, saving the resumable checkpoint): not offloaded here
    def lightning_module_state_dict(self):
        if self.root_device.type != "cpu" or self._state_dict_type != "full":
            return super().lightning_module_state_dict()
        with _full_state_dict_on_cpu(self.model):
            return self.model.state_dict()

    def optimizer_state(self, optimizer):
        if self.root_device.type != "cpu" or self._state_dict_type != "full":
            return super().optimizer_state(optimizer)
        optimizer = getattr(optimizer, "_optimizer", optimizer)  # a LightningOptimizer's own
        with _full_state_dict_on_cpu(self.model):
            state = FullyShardedDataParallel.optim_state_dict(self.model, optimizer)
            if self.global_rank == 0:
                state = FullyShardedDataParallel.rekey_optim_state_dict(state, OptimStateKeyType.PARAM_ID, self.model)
            return state

    def setup(self, trainer) -> None:
        super().setup(trainer)
        root = self.model

        def clip_grad_by_norm(optimizer, clip_val) -> None:  # Lightning's FSDP refuses norm clipping, for want
            root.clip_grad_norm_(clip_val)  # of the root, which holds the norm over every shard
        self.precision_plugin.clip_grad_by_norm = clip_grad_by_norm

    def teardown(self) -> None:
        module = self.lightning_module
        trainer = getattr(module, "_trainer", None) if module is not None else None
        # a finished run only: after an error one rank may be gone, and the unsharding is collective
        if trainer is not None and trainer.state.status == TrainerStatus.RUNNING and self.model is not None:
            self.model = whole_modules(self.model, to_cpu=bool(getattr(self.cpu_offload, "offload_params", False)))
        self.precision_plugin.__dict__.pop("clip_grad_by_norm", None)  # it held the old root alive
        super().teardown()
        gc.collect()  # the sharded copy and its optimizer state, in Trainer <-> module cycles
        if self.root_device.type == "cuda":
            torch.cuda.empty_cache()


def _full_state_dict_on_cpu(model):
    return FullyShardedDataParallel.state_dict_type(model, StateDictType.FULL_STATE_DICT,
                                                    FullStateDictConfig(offload_to_cpu=False, rank0_only=False),
                                                    FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=False))


WRAPPERS = (FullyShardedDataParallel, CheckpointWrapper)
_WRAPPER_PREFIXES = re.compile(r"(?:_fsdp_wrapped_module|_checkpoint_wrapped_module|_orig_mod)\.")


def unwrapped_name(name: str) -> str:
    """A parameter's or state-dict key's name as the model itself has it, without FSDP's, activation
    checkpointing's or torch.compile's wrapper prefixes."""
    return _WRAPPER_PREFIXES.sub("", name)


def _inner(module):
    """What an FSDP unit or an activation-checkpointing wrapper wraps."""
    for attr in ("_fsdp_wrapped_module", "_checkpoint_wrapped_module"):
        if hasattr(module, attr):
            return getattr(module, attr)
    raise TypeError(f"{type(module).__name__} wraps no module")


def whole_modules(root, to_cpu: bool = False):
    """`root` with every FSDP unit and activation-checkpointing wrapper inside it replaced by the module it wraps,
    each parameter a new tensor holding its whole value (gathered from the ranks, on every rank; on the CPU when
    `to_cpu`, as FSDP's cpu_offload keeps them), tied parameters still tied, buffers back in the dtype FSDP's
    mixed precision found them in, and FSDP's marks on the modules removed (transformers' generate reads one to
    turn synced_gpus on). The units are gathered one at a time, so the peak is the whole copy and one unit, not
    two whole models. Collective under FSDP: every rank calls it. A root with no wrapper is returned as it is."""
    if not any(isinstance(m, WRAPPERS) for m in root.modules()):
        return root
    units = FullyShardedDataParallel.fsdp_modules(root)  # outermost first: its buffer names cover the whole tree
    buffer_dtypes = dict(getattr(units[0], "_buffer_name_to_orig_dtype", None) or {}) if units else {}
    whole = {}  # id of a parameter (tied ones share it) -> its whole copy
    placed = []  # (module, name, id of its parameter)

    def collect(top):
        """The parameters of the modules under `top` that no nested FSDP unit holds."""
        stack = [top]
        while stack:
            module = stack.pop()
            if not isinstance(module, WRAPPERS):
                for name, p in module._parameters.items():
                    if p is not None:
                        if id(p) not in whole:
                            value = p.detach().to("cpu", copy=True) if to_cpu else p.detach().clone()
                            whole[id(p)] = torch.nn.Parameter(value, requires_grad=p.requires_grad)
                        placed.append((module, name, id(p)))
            stack.extend(c for c in module._modules.values()
                         if c is not None and not isinstance(c, FullyShardedDataParallel))

    for unit in units:
        with FullyShardedDataParallel.summon_full_params(unit, recurse=False, writeback=False):
            collect(unit)
    if not isinstance(root, FullyShardedDataParallel):
        collect(root)  # modules outside every unit hold their parameters whole
    while isinstance(root, WRAPPERS):
        root = _inner(root)
    stack = [root]
    while stack:
        module = stack.pop()
        for name, child in list(module._modules.items()):
            inner = child
            while isinstance(inner, WRAPPERS):
                inner = _inner(inner)
            if inner is not child:
                module._modules[name] = inner
            if inner is not None:
                stack.append(inner)
    for module, name, key in placed:
        module._parameters[name] = whole[key]
    for prefix, module in root.named_modules():
        for attr in ("_is_fsdp_managed_module", "_fsdp_use_orig_params"):
            module.__dict__.pop(attr, None)
        for name, b in list(module._buffers.items()):
            dtype = buffer_dtypes.get(f"{prefix}.{name}" if prefix else name)
            if b is not None and dtype is not None and b.dtype != dtype:
                module._buffers[name] = b.to(dtype)
    return root


