"""torch.distributed for batch analyses launched by torchrun (one node or many).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in every process it starts,
for `--nproc_per_node` alone as for multi-node rendezvous (`--nnodes`, `--node_rank`,
`--rdzv_backend c10d --rdzv_endpoint host:port`), so `init_from_env` needs nothing else: without
WORLD_SIZE (or with 1) the run is a single process and no process group is made. Backend: nccl when
the run's device is CUDA, gloo otherwise (a CPU run across nodes works with gloo).

Work is sharded by `shard`: unit n goes to rank n % world_size. Units are the runner's chunks, so the
part files (and hence the merged rows) are the same whatever the number of processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

# Rank 0 merges every part and computes the statistics while the others wait at a barrier: on a
# full validation set that can take minutes, longer than the default collective timeout allows.
DEFAULT_TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Context:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that merges and prints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when several processes share the work."""
        return self.world_size > 1


def env_context() -> Context:
    """Rank, world size and local rank from the environment torchrun sets (single process if absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Context()
    return Context(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def current() -> Context:
    """The context of an initialised process group, or a single process when there is none."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Context()


def init_from_env(device: torch.device, timeout: timedelta = DEFAULT_TIMEOUT) -> Context:
    """Join the process group torchrun describes in the environment (no-op for a single process)."""
    context = env_context()
    if not context.distributed or dist.is_initialized():
        return current() if context.distributed else context
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return current()


def shutdown() -> None:
    """Leave the process group, if there is one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(units: int, context: Context | None = None) -> list[int]:
    """The unit numbers this rank works on: round robin, so long and short stretches are spread."""
    context = context or current()
    return list(range(context.rank, units, context.world_size))


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if current().distributed:
        dist.barrier()


def broadcast(value: Any, src: int = 0) -> Any:
    """Rank `src`'s (picklable) value, on every rank."""
    if not current().distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather(value: Any) -> list[Any]:
    """Every rank's (picklable) value, in rank order, on every rank."""
    context = current()
    if not context.distributed:
        return [value]
    values: list[Any] = [None] * context.world_size
    dist.all_gather_object(values, value)
    return values
