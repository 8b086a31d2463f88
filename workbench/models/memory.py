"""Memory budgets: what one clip of a model costs to run, and how many clips fit in a budget.

A model's per-clip footprint is measured, not guessed: one clip of its input size is traced on the
`meta` device (shapes only: no arithmetic, no real memory) under a dispatch mode that counts the bytes
of every tensor storage alive at once, and keeps the peak (the same bytes as a real pass: ResNet-50 GSM
at 8x224, 90.36 MiB forward and 748.9 against 748.7 MiB forward+backward). Forward-only work
(inference mode) holds a few activations at a time; a forward whose gradients are taken keeps every
tensor autograd saves until the backward frees them, so its peak is the saved activations plus the
backward's own. Both scale with the batch (batch 2 traces at 2x batch 1 to 0.2%), so each kind of pass
is traced once per model and input shape, on first use, and kept.

The process's peak resident memory (what `--max-memory` bounds) is more than the live tensors: the
allocator keeps freed blocks, oneDNN convolutions take scratch buffers. Measured on the CPU (torch
2.13, 2 threads, glibc malloc at its defaults, one fresh process per row, VmHWM minus VmRSS before the
pass), measured / traced MiB:

    model                         forward, batch 1 / 2 / 4           forward+backward, batch 1 / 2 / 4
    ResNet-50 GSM 8x224           144/90, 214/181, 457/361           888/749, 1780/1496, 3177/2991
    GSM BN-Inception 8x224        94/54, -, 253/214                  441/364, 812/728, -
    torchvision r2plus1d_18 16x112  132/94, 199/188, -               652/480, 1173/960, 2070/1919

So a clip is planned at `RSS_PER_TRACED_BYTE` x its traced bytes plus `PASS_SLACK` per pass: every
row above is under its estimate (the closest: r2plus1d forward+backward at batch 1, 652 of 698 MiB;
3D convolutions take column buffers inside the kernel that no trace sees, 1.1-1.4x). Under the opt-in
`workbench.allocator.keep_freed_memory` forwards take more and vary from run to run (the ResNet-50 GSM
forward: 163/90, 577-601/361, 1069-1211/723 at batch 1 / 4 / 8; forward+backward 895/752, 1809/1503
at batch 1 / 2), and the planning does not hold (workbench/allocator.py). A trace costs
0.1 s (ResNet-50 GSM forward) to 0.3 s (its forward+backward), plus ~1 s on the first one in a
process (python dispatch imports torch._dynamo, once); the model is copied onto meta by
`copy.deepcopy` with its tensors replaced (torch.func.functional_call would swap tensors on a shared
module and import torch._dynamo besides).

A `Budget` turns that into batch sizes: what is left of the budget after what the process already
holds (its resident memory now: the interpreter, torch, the loaded models, decoded videos) and what
the caller reserves, divided by one item's cost. Work that does not fit even at batch 1 is refused
with a `MemoryBudgetError` that says how much would fit it.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import threading
import weakref
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..allocator import maps_large_blocks, release_free_memory
from ..device import model_device
from ..errors import MemoryBudgetError, OptionError

__all__ = ["DEFAULT_MAX_MEMORY", "Budget", "Footprint", "format_size", "measure_footprint", "parse_size",
           "resident_bytes"]

DEFAULT_MAX_MEMORY = 4 * 2**30  # a whole command under 4 GiB peak RSS on the CPU
RSS_PER_TRACED_BYTE = 1.25  # resident bytes per live tensor byte (allocator, oneDNN scratch): measured above
PASS_SLACK = 96 * 2**20  # per pass: library buffers that do not grow with the batch
# A whole-process budget also keeps room for what a command holds after it planned its batches: a video
# decoded ahead at its own resolution (frames as floats while they are resized), libraries imported
# later (pyarrow for part files, scipy for intervals, plotly for figures), the tables. Measured without
# it (benchmarks/real_size.py, 640x272 video): temporal-test of a torchvision r2plus1d_18 peaked 0.3 GiB
# over a 2 GiB budget and its Grad-CAM reached it; with it every row stayed under.
GROWTH_BYTES = 384 * 2**20
# glibc's malloc serves blocks up to this size (its mmap threshold's ceiling, which it reaches once such a
# block is freed) from its heap and reuses them; each larger one is a fresh mmap, every page of it faulted
# in and zero-filled by the kernel, pass after pass. So CPU batches stop where the largest tensor of a
# pass would outgrow it: measured on 2 cores, a batch-8 ResNet-50 forward at 8x224 cost 0.62 s per clip
# (12.6 of 14.8 s wall in the kernel), a batch-1 forward 0.35 s.
HEAP_BLOCK_BYTES = 32 * 2**20
UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
         "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?i?)b?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes of a size: "2GiB", "512MiB", "1.5g" (binary), "512MB", "4GB" (decimal), "1000000" (bytes)."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(str(text))
        if not match:
            raise OptionError(f"bad memory size {text!r}: expected a number and a unit, e.g. 2GiB, 512MB, 4g")
        number, unit = match.groups()
        unit = unit.lower()
        if len(unit) == 1 and unit != "i" and not str(text).strip().lower().endswith(f"{unit}b"):
            unit += "i"  # a bare "2g" or "512m" means binary units, as free -g and docker do
        if unit not in UNITS:
            raise OptionError(f"bad memory size {text!r}: expected a number and a unit, e.g. 2GiB, 512MB, 4g")
        value = int(float(number) * UNITS[unit])
    if value <= 0:
        raise OptionError(f"bad memory size {text!r}: must be more than zero")
    return value


def format_size(size: float) -> str:
    """A byte count for people: "5.1 GiB", "740 MiB"."""
    if size >= 2**30:
        return f"{size / 2**30:.1f} GiB"
    return f"{size / 2**20:.0f} MiB"


def resident_bytes() -> int:
    """This process's resident memory now (Linux /proc; elsewhere its peak so far)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _page_size()
    except OSError:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _page_size() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE")


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of tensor storages created under it that are still alive, their peak, and the
    largest single storage."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.largest = 0
        self._seen: set[int] = set()

    def _freed(self, key: int, size: int) -> None:
        self.live -= size
        self._seen.discard(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = storage._cdata  # one key per storage: views of it are not counted twice
            if key in self._seen:
                continue
            size = storage.nbytes()
            self._seen.add(key)
            self.live += size
            self.peak = max(self.peak, self.live)
            self.largest = max(self.largest, size)
            weakref.finalize(storage, self._freed, key, size)
        return out


class Footprint:
    """What one clip of a model costs: traced live bytes of a forward and of a forward+backward, each
    traced the first time it is asked for (a forward-only command never pays for the backward's trace)."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...]) -> None:
        self.model = _describe(model, shape)  # "resnet50 gsm 8x224": named in messages
        self.shape = shape
        self.clip_bytes = 4 * math.prod(shape)  # one input clip (T, 3, H, W) float32
        self._model = weakref.ref(model)
        self._traced: dict[bool, tuple[int, int]] = {}  # backward -> (peak live bytes, largest tensor)
        self._lock = threading.Lock()

    def traced(self, backward: bool) -> int:
        """Peak live bytes of one clip's forward in inference mode, or of its forward and input-gradient
        backward (traced once)."""
        return self._trace(backward)[0]

    def largest_tensor(self, backward: bool) -> int:
        """Bytes of the largest tensor one clip's pass creates (traced with `traced`)."""
        return self._trace(backward)[1]

    def _trace(self, backward: bool) -> tuple[int, int]:
        with self._lock:
            if backward not in self._traced:
                model = self._model()
                if model is None:
                    raise RuntimeError("the model of this footprint is gone")
                try:
                    self._traced[backward] = _trace(model, self.shape, backward, "meta")
                except (NotImplementedError, RuntimeError):  # an op without a meta kernel, or data-dependent
                    self._traced[backward] = _trace(model, self.shape, backward, str(model_device(model)))
            return self._traced[backward]

    def reuse_batch(self, backward: bool) -> int | None:
        """Most clips per pass whose tensors glibc's malloc still serves from blocks it reuses; None where
        that does not limit (a GPU, another allocator, the opt-in `keep_freed_memory`)."""
        model = self._model()
        if model is None or model_device(model).type != "cpu" or not maps_large_blocks():
            return None
        return max(1, HEAP_BLOCK_BYTES // max(1, self.largest_tensor(backward)))

    @property
    def forward_bytes(self) -> int:
        """Peak live bytes of one clip's forward in inference mode."""
        return self.traced(False)

    @property
    def backward_bytes(self) -> int:
        """Peak live bytes of one clip's forward and input-gradient backward."""
        return self.traced(True)

    def per_clip(self, backward: bool) -> int:
        """Resident bytes one more clip in a pass costs (allocator overhead included)."""
        return int(RSS_PER_TRACED_BYTE * self.traced(backward))

    def job_bytes(self, backward: bool, items: int, inputs_per_item: float = 1.0) -> int:
        """Bytes a pass of `items` items needs beyond what the process holds already."""
        return PASS_SLACK + items * (self.per_clip(backward) + int(inputs_per_item * self.clip_bytes))

    def __repr__(self) -> str:
        passes = sorted(self._traced.items())
        traced = ", ".join(f"{'backward' if k else 'forward'}={peak}" for k, (peak, _) in passes)
        return f"Footprint({self.model!r}, clip_bytes={self.clip_bytes}, {traced or 'not traced yet'})"


def _describe(model: nn.Module, shape: tuple[int, ...]) -> str:
    spec = getattr(model, "spec", None)
    frames, size = shape[0], shape[-1]
    if spec is None:
        return f"{type(model).__name__} {frames}x{size}"
    return f"{spec.backbone} {spec.scheme} {frames}x{size}"


def _view_on(model: nn.Module, device: str) -> nn.Module:
    """A structural copy of `model` in eval mode whose tensors are on `device`: its own tensors where
    they are there already (a private view: nothing copied), shape-only copies on `meta`."""
    tensors: dict[int, torch.Tensor] = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.device == torch.device(device):
            tensors[id(tensor)] = tensor
        elif isinstance(tensor, nn.Parameter):
            tensors[id(tensor)] = nn.Parameter(tensor.detach().to(device), requires_grad=tensor.requires_grad)
        else:
            tensors[id(tensor)] = tensor.detach().to(device)
    return copy.deepcopy(model, tensors).eval()


def _trace(model: nn.Module, shape: tuple[int, ...], backward: bool, device: str) -> tuple[int, int]:
    """Peak live bytes and largest tensor's bytes of one clip of `shape` (T, C, H, W) through a copy of
    `model` on `device`."""
    view = _view_on(model, device)
    clip = torch.zeros((1, *shape), device=device, requires_grad=backward)
    counter = _LiveBytes()
    with counter:
        if backward:
            logits = view(clip)
            (grad,) = torch.autograd.grad(logits[:, 0].sum(), clip)
            del logits, grad
        else:
            with torch.inference_mode():
                view(clip)
    return counter.peak, counter.largest


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, Footprint]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def measure_footprint(model: nn.Module, shape: tuple[int, ...] | None = None) -> Footprint:
    """The per-clip footprint of `model` on clips of `shape` (T, C, H, W; default: its spec's input),
    kept per model and shape; each kind of pass is traced on first use (on the meta device; a model
    whose forward needs real values is traced on the CPU at batch 1 instead)."""
    if shape is None:
        spec = model.spec
        shape = (spec.frames, 3, spec.input_size, spec.input_size)
    shape = tuple(int(s) for s in shape[-4:])
    with _LOCK:
        known = _CACHE.setdefault(model, {})
        if shape not in known:
            known[shape] = Footprint(model, shape)
        return known[shape]


def _suggestion(needed: int) -> str:
    """A --max-memory value just above `needed`: whole GiB, or 256 MiB steps below 2 GiB."""
    if needed < 2 * 2**30:
        return f"{math.ceil(needed / 2**28) * 256}MiB"
    return f"{math.ceil(needed / 2**30)}GiB"


@dataclass(frozen=True)
class Budget:
    """A memory budget: `total` bytes of peak resident memory, of which `held` are taken already (None:
    this process's resident memory when a batch is planned plus GROWTH_BYTES, so the budget bounds the
    whole process, as --max-memory does; 0: a budget for the job's own memory, as the app's setting is
    per analysis)."""

    total: int = DEFAULT_MAX_MEMORY
    held: int | None = None

    @classmethod
    def of(cls, memory: Budget | int | str | None) -> Budget:
        """A whole-process budget from bytes or a size text ("2GiB", the CLI's --max-memory); None (a
        library call that names none): the default size for the call's own work, whatever the process
        (a notebook, a test run) holds besides; a Budget as is."""
        if isinstance(memory, Budget):
            return memory
        return cls(DEFAULT_MAX_MEMORY, held=0) if memory is None else cls(parse_size(memory))

    def batch(
        self,
        footprint: Footprint,
        backward: bool,
        want: int,
        *,
        inputs_per_item: float = 1.0,
        reserve: int = 0,
        what: str = "this analysis",
    ) -> int:
        """Items per pass (1..`want`) that fit: each costs a clip's footprint plus `inputs_per_item`
        input clips (perturbed copies, gradients); `reserve` is memory the caller holds besides.
        MemoryBudgetError when not even one fits."""
        if self.held is None:
            release_free_memory()  # what earlier passes freed is not held (glibc keeps it resident otherwise)
        held = (resident_bytes() + GROWTH_BYTES if self.held is None else self.held) + reserve
        one = footprint.job_bytes(backward, 1, inputs_per_item)
        fits = (self.total - held - PASS_SLACK) // (one - PASS_SLACK)
        if fits < 1:
            needed = held + one
            raise MemoryBudgetError(
                f"{what} on {footprint.model} needs ~{format_size(needed)} at batch 1, over the memory "
                f"budget of {format_size(self.total)}: allow --max-memory {_suggestion(needed)} (the app: "
                "Settings, memory) or use fewer frames or a smaller input")
        reuse = footprint.reuse_batch(backward)  # a bigger CPU pass faults in its big tensors afresh
        return int(max(1, min(want, fits, reuse or fits)))
