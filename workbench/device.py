"""Where a model runs: `--device auto|cpu|cuda[:i]`, inference precision (`--amp`) and memory layout.

`auto` means the first CUDA GPU when torch sees one (with LOCAL_RANK under torchrun: that rank's
GPU), else the CPU. `--amp bf16|fp16` runs inference-only forward passes under `torch.autocast` on
CUDA; on the CPU it is refused (CPU autocast is slower than fp32 for these small convolutions and
changes the numbers), and gradient-based work (attribution) never offers it, since half-precision
gradients make attribution maps noisy. On CUDA, convolution weights are put in channels_last
(channels_last_3d for 3D convolutions) so cuDNN can pick its NHWC kernels; on the CPU nothing is
changed. The channels_last gain is a GPU effect and has not been measured on this project's CPU
machines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from .errors import DeviceError

AMP_CHOICES = ("off", "bf16", "fp16")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(text: str | None = "auto") -> torch.device:
    """The torch.device for `auto`, `cpu`, `cuda` or `cuda:i`; DeviceError when it is not usable."""
    text = (text or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            # under torchrun each process on a node takes its own GPU
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local % torch.cuda.device_count())
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        index_text = text.partition(":")[2]
        if index_text and not index_text.isdigit():
            raise DeviceError(f"bad device {text!r}; use auto, cpu, cuda or cuda:N")
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {text}: torch sees no CUDA GPU here (torch {torch.__version__}); "
                              "use --device cpu or auto")
        count = torch.cuda.device_count()
        if index_text:
            index = int(index_text)
        else:
            index = int(os.environ.get("LOCAL_RANK", "0")) % count
        if index >= count:
            raise DeviceError(f"--device {text}: only {count} CUDA device(s) (0..{count - 1})")
        return torch.device("cuda", index)
    raise DeviceError(f"bad device {text!r}; use auto, cpu, cuda or cuda:N")


def resolve_amp(amp: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `--amp` on `device` (None for off); DeviceError on the CPU."""
    amp = (amp or "off").lower()
    if amp not in AMP_CHOICES:
        raise DeviceError(f"bad --amp {amp!r}; choose from {', '.join(AMP_CHOICES)}")
    if amp == "off":
        return None
    if device.type != "cuda":
        raise DeviceError(f"--amp {amp} needs a CUDA device (got {device}); use --amp off on the CPU")
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise DeviceError("--amp bf16: this GPU does not support bfloat16; use --amp fp16")
    return AMP_DTYPES[amp]


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's parameters (CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def channels_last(model: nn.Module) -> nn.Module:
    """Put every Conv2d weight in channels_last and every Conv3d weight in channels_last_3d (in place)."""
    for module in model.modules():
        # Module.to(memory_format=...) fails on models mixing 2D and 3D convolutions (it applies one
        # format to every 4-D and 5-D tensor), so each kind gets its own
        if isinstance(module, nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)
        elif isinstance(module, nn.Conv3d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last_3d)
    return model


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move a model to `device` in eval mode; on CUDA, convolution weights go channels_last."""
    model = model.to(device).eval()
    return channels_last(model) if device.type == "cuda" else model


@contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """Autocast to `dtype` on `device` (nothing when dtype is None)."""
    context = torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else nullcontext()
    with context:
        yield


def peak_memory(device: torch.device | None = None) -> dict[str, float]:
    """Peak resident memory of this process in MiB (and peak CUDA allocation on a CUDA device)."""
    import resource

    peak = {"max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device is not None and device.type == "cuda":
        peak["cuda_max_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return peak
