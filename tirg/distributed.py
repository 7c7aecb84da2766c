"""Data-parallel training through PyTorch's own engine: torchrun starts the processes, DDP averages
the gradients; this module holds the few helpers the training loops share.

Without torchrun's environment (no WORLD_SIZE, or WORLD_SIZE=1) every helper reduces to the plain
single process: rank 0 of 1, batches unsliced, nothing gathered, the model unwrapped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as collectives
from torch import nn

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Other ranks wait in a collective while rank 0 evaluates or writes; a test-split evaluation on CPU
# can take longer than the default 30 minutes (gloo) or 10 minutes (NCCL) before the wait times out.
COLLECTIVE_TIMEOUT = timedelta(hours=2)

# The collectives inside the model's forward and backward (gather_batch, GlobalBatchNorm) run on a
# process group of their own. On the default group they would interleave with DDP's gradient
# all-reduces, which DDP launches from backward hooks as buckets fill: under gloo, collectives pair
# up by the order each rank issues them, and from the second step on the ranks' orders can differ.
_model_group: dist.ProcessGroup | None = None


def init_from_environment(device: str | torch.device) -> bool:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, ...); an entry point calls this once.

    NCCL when `device` is CUDA ('auto' resolves to it when a GPU is present), else gloo; each process
    then uses GPU number LOCAL_RANK. Returns whether a group of more than one process was joined.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or dist.is_initialized():
        return dist.is_initialized()
    device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    global _model_group
    _model_group = dist.new_group(timeout=COLLECTIVE_TIMEOUT)
    logger.info("process %d of %d (%s)", dist.get_rank(), world_size, dist.get_backend())
    return True


def shutdown() -> None:
    """Leave the process group, if one was joined."""
    global _model_group
    if dist.is_initialized():
        dist.destroy_process_group()
    _model_group = None


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes run folders, checkpoints, logs and progress, and evaluates."""
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def from_main(value: Callable[[], T]) -> T:
    """`value()` computed on rank 0 only and sent to every rank (a run folder's name, an evaluation's result)."""
    if not dist.is_initialized():
        return value()
    box = [value() if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_batch_size(batch_size: int, flag: str = "--batch_size") -> None:
    """Refuse a global batch that the processes cannot share equally (before any work)."""
    processes = world_size()
    if batch_size % processes:
        raise ValueError(
            f"{flag} {batch_size} is the global batch and must split equally over the {processes} processes"
            f" (torchrun --nproc_per_node x nodes); use a multiple of {processes}"
        )


def rank_slice(batch: Sequence[T]) -> list[T]:
    """This rank's contiguous share of a global batch: rank r of W takes items [r*B/W, (r+1)*B/W)."""
    share = len(batch) // world_size()
    return list(batch[rank() * share : (rank() + 1) * share])


class RankSlices(torch.utils.data.Sampler[list[Any]]):
    """The batches of `batches` (global, the same on every rank), each cut to this rank's slice."""

    def __init__(self, batches: torch.utils.data.Sampler[list[Any]]):
        self.batches = batches

    def __iter__(self) -> Iterator[list[Any]]:
        for batch in self.batches:
            yield rank_slice(batch)


def gather_batch(local: torch.Tensor) -> torch.Tensor:
    """Every rank's `local` rows concatenated in rank order: the global batch.

    Gradients flow back to each rank's own rows (the backward sums what every rank's loss sends
    them), as CLIP-style training gathers features; with DDP's gradient averaging, a loss computed
    on the gathered batch on every rank gives the single-process gradient. One process: `local`.
    (torch.distributed.nn.functional.all_gather, deprecated in torch 2.14, points to these collectives.)
    """
    if world_size() == 1:
        return local
    return collectives.all_gather_single(local.contiguous(), 0, _model_group or dist.group.WORLD)


def sum_across(local: torch.Tensor) -> torch.Tensor:
    """The sum of `local` over the ranks, differentiable (the backward sums the gradients back)."""
    if world_size() == 1:
        return local
    return collectives.all_reduce(local.contiguous(), "sum", _model_group or dist.group.WORLD)


def mean_across(values: torch.Tensor) -> torch.Tensor:
    """The mean of `values` over the ranks, for logging (no gradient)."""
    if world_size() == 1:
        return values
    on_backend = values.detach().to("cuda" if dist.get_backend() == "nccl" else "cpu", copy=True)
    dist.all_reduce(on_backend)
    return on_backend.to(values.device) / world_size()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch on CPU (gloo), where torch's SyncBatchNorm has no kernel
    (and DistributedDataParallel refuses it on CPU modules).

    In training mode with several processes, the batch mean and variance are those of the global
    batch: sums all-reduced across ranks with gradients (two passes, mean then squared deviations,
    as single-process BatchNorm computes them), the running statistics updated as BatchNorm does.
    Otherwise it is BatchNorm. Same parameters and buffers as BatchNorm1d/2d, so checkpoints do not change.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-d input (got {input.dim()}-d)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = input.numel() // input.size(1) * world_size()
        values = input.float() if input.dtype != torch.float64 else input  # statistics in float32, as BatchNorm keeps them under autocast
        mean = sum_across(values.sum(dims)) / count
        centred = values - mean.reshape(shape)
        variance = sum_across(centred.square().sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            with torch.no_grad():
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * variance.detach() * count / max(count - 1, 1))
        output = centred * torch.rsqrt(variance + self.eps).reshape(shape)
        if self.affine:
            output = output * self.weight.reshape(shape) + self.bias.reshape(shape)
        return output.to(input.dtype)


class GlobalDropout(nn.Dropout):
    """Dropout whose mask is drawn for the global batch, each process keeping its rows.

    One process draws a [B, ...] mask from torch's generator; each of W processes (seeded alike)
    draws the same [B, ...] mask, as F.dropout does, and applies its rows, so the masks, and the
    generator states after them, are those of the one-process run. One process: nn.Dropout.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.p > 0 and world_size() > 1):
            return super().forward(input)
        shape = (input.size(0) * world_size(), *input.shape[1:])
        keep = torch.empty(shape, dtype=input.dtype, device=input.device).bernoulli_(1 - self.p).div_(1 - self.p)
        share = input.size(0)
        return input * keep[rank() * share : (rank() + 1) * share]


def global_batch_layers(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` with every BatchNorm computing its statistics, and every Dropout drawing its mask, for
    the global batch (when distributed): torch's SyncBatchNorm on CUDA, GlobalBatchNorm on CPU."""
    if world_size() == 1:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        # Changing the class changes only the forward: parameters and buffers stay.
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.__class__ = GlobalBatchNorm
        elif type(module) is nn.Dropout:
            module.__class__ = GlobalDropout
    return model


def data_parallel(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` under DistributedDataParallel when distributed (rank 0's weights broadcast to all), else itself.

    static_graph: some models leave a part unused (imgonly never calls its text encoder); the same
    parts are used at every step, which DDP then learns once instead of searching the graph each step.
    """
    if world_size() == 1:
        return module
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, static_graph=os.environ.get("SG", "1") == "1")
