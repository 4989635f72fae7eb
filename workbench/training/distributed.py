"""Data-parallel training under ``torchrun``: the few collective operations the trainer needs.

``torchrun --nproc_per_node N -m workbench train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set. Each one runs the same :class:`~workbench.training.trainer.Trainer`;
this module turns that environment into a :class:`DistInfo` and wraps the handful of collectives used:

* every rank computes the same global batch order (from the seed) and takes its slice of each batch
  (:func:`shard`), so one step with N processes sees the same pairs as one step with one process;
* the model is wrapped in ``DistributedDataParallel`` (gradients averaged across ranks);
* step metrics are summed with :func:`all_reduce_sum`, evaluation scores are gathered with
  :func:`all_gather_objects`, and a stop request on any rank stops all of them at the same step
  (:func:`any_rank`);
* only rank 0 writes to the project: it creates the run and :func:`broadcast_object` sends its id.

Without ``WORLD_SIZE`` > 1 every helper is a no-op on one process, so the trainer has no special case
for a single process. gloo on the CPU, nccl on CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    #: True when this module started the process group (and so should end it).
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistInfo()


def env_world_size() -> int:
    """WORLD_SIZE from the environment (1 when unset or unreadable)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def setup(device_type: str = "cpu") -> DistInfo:
    """Join the process group torchrun describes, or report a single process.

    Uses an existing process group when the caller already started one; otherwise starts one when
    ``WORLD_SIZE`` > 1 (gloo on the CPU, nccl on CUDA, where each rank takes GPU ``LOCAL_RANK``).
    """
    import torch
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), False)
    if env_world_size() <= 1:
        return SINGLE
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run on one process")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, True)


def teardown(info: DistInfo) -> None:
    """End the process group if :func:`setup` started it."""
    import torch.distributed as dist

    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def device_for(info: DistInfo, device: str) -> str:
    """The device this rank trains on: ``cuda:LOCAL_RANK`` for CUDA under torchrun."""
    if device == "cuda" and info.enabled:
        return f"cuda:{info.local_rank}"
    return device


def shard(batch: Sequence[int], info: DistInfo) -> list[int]:
    """This rank's part of a global batch: every N-th pair (strided, so lengths stay balanced)."""
    return list(batch[info.rank :: info.world_size]) if info.enabled else list(batch)


def wrap(module: Any, info: DistInfo, device: str) -> Any:
    """``DistributedDataParallel(module)`` under torchrun, the module itself otherwise."""
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.local_rank] if device.startswith("cuda") else None
    return DistributedDataParallel(module, device_ids=ids)


def all_reduce_sum(tensor: Any, info: DistInfo) -> Any:
    """Sum a tensor over ranks in place (and return it)."""
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, info: DistInfo, device: str = "cpu") -> bool:
    """True on every rank when ``flag`` is true on any rank (stop requests, failures)."""
    if not info.enabled:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_object(obj: T, info: DistInfo, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (e.g. the run id rank 0 created)."""
    if not info.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: T, info: DistInfo) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()
