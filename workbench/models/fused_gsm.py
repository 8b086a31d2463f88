"""An opt-in fused CPU kernel for GSM's inference forward: BN+ReLU, gate taps, tanh and routing in 4 passes.

In eager PyTorch a GateShift module runs some 60 tensor operations per call (the gate conv's taps,
the per-group shifts), and on a ResNet-18 at 8x112 their dispatch and memory passes cost about a
tenth of the network's time although the gate conv adds 1.5% FLOPs. This kernel does the same
arithmetic in one call: a fused BN+ReLU pass, the channel contraction as one batched matmul
(the taps' partial sums, as `GateConv3d` does), one pass that adds the 27 taps and takes tanh, and
one pass that routes the gated parts. Inference only (no autograd), float32 CPU tensors, modules in
eval mode and without hooks on their parts (analyses read and replace gates through hooks); every
other call takes the eager path, which stays the reference (tests compare the two).

It is C++ compiled on this machine the first time it is enabled (about a minute; cached by torch in
~/.cache/torch_extensions), so it is off unless asked for: `enable()`, or WORKBENCH_FUSED_GSM=1 in
the environment. Without a C++ compiler `enable()` raises FusedKernelError and nothing changes.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["FusedKernelError", "available", "disable", "enable", "enabled", "fused_forward", "using"]


class FusedKernelError(RuntimeError):
    """The fused GSM kernel could not be built here (no compiler, a failed build)."""


_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>

// x (B*T, C, H, W); scale, shift (C): eval BatchNorm as x * scale + shift; taps (g, 27, C/g) the gate
// conv's weight as [group][kt*9 + kh*3 + kw][channel]; bias (g). Returns y like x: per group q, the kept
// part (1 - gate) * x plus gate * x arriving from frame t+1 (q even) or t-1 (q odd); and the gates
// (B, T, g, H*W) after tanh.
std::vector<torch::Tensor> gsm_forward(torch::Tensor x, torch::Tensor scale, torch::Tensor shift,
                                       torch::Tensor taps, torch::Tensor bias, int64_t frames) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat && x.is_contiguous(),
              "x: contiguous float (N, C, H, W)");
  const int64_t bt = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), hw = h * w;
  const int64_t g = taps.size(0), cg = c / g, t_len = frames, b = bt / frames;
  TORCH_CHECK(taps.size(1) == 27 && taps.size(2) == cg && cg * g == c && b * t_len == bt,
              "shapes do not agree");
  auto z = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* sc = scale.data_ptr<float>();
  const float* sh = shift.data_ptr<float>();
  float* zp = z.data_ptr<float>();
  at::parallel_for(0, bt * c, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t plane = lo; plane < hi; ++plane) {
      const float a = sc[plane % c], s = sh[plane % c];
      const float* src = xp + plane * hw;
      float* dst = zp + plane * hw;
      for (int64_t i = 0; i < hw; ++i) {
        const float v = src[i] * a + s;
        dst[i] = v > 0.f ? v : 0.f;
      }
    }
  });
  // partial[n, q, k, pos] = sum over the group's channels of taps[q, k, ch] * z[n, q*cg + ch, pos]
  auto partial = torch::matmul(taps, z.view({bt, g, cg, hw}));  // (B*T, g, 27, H*W)
  z = torch::Tensor();
  const float* pp = partial.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  auto gates = torch::empty({b, t_len, g, hw}, x.options());
  float* gp = gates.data_ptr<float>();
  at::parallel_for(0, bt * g, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t job = lo; job < hi; ++job) {
      const int64_t n = job / g, q = job % g, t = n % t_len;
      float* out = gp + job * hw;
      for (int64_t i = 0; i < hw; ++i) out[i] = bp[q];
      for (int64_t kt = 0; kt < 3; ++kt) {
        const int64_t src_t = t + kt - 1;
        if (src_t < 0 || src_t >= t_len) continue;
        const float* base = pp + ((n + kt - 1) * g + q) * 27 * hw;
        for (int64_t kh = 0; kh < 3; ++kh) {
          const int64_t dh = kh - 1, h0 = dh < 0 ? 1 : 0, h1 = dh > 0 ? h - 1 : h;
          for (int64_t kw = 0; kw < 3; ++kw) {
            const int64_t dw = kw - 1, w0 = dw < 0 ? 1 : 0, w1 = dw > 0 ? w - 1 : w;
            const float* plane = base + (kt * 9 + kh * 3 + kw) * hw;
            for (int64_t row = h0; row < h1; ++row) {
              float* o = out + row * w;
              const float* in = plane + (row + dh) * w + dw;
              for (int64_t col = w0; col < w1; ++col) o[col] += in[col];
            }
          }
        }
      }
      for (int64_t i = 0; i < hw; ++i) out[i] = std::tanh(out[i]);
    }
  });
  partial = torch::Tensor();
  auto y = torch::empty_like(x);
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, bt * c, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t plane = lo; plane < hi; ++plane) {
      const int64_t n = plane / c, ch = plane % c, q = ch / cg, t = n % t_len;
      const float* xs = xp + plane * hw;
      const float* gs = gp + (n * g + q) * hw;
      float* ys = yp + plane * hw;
      const int64_t from = q % 2 == 0 ? t + 1 : t - 1;  // the frame whose gated part arrives here
      if (from >= 0 && from < t_len) {
        const int64_t step = from - t;
        const float* xn = xs + step * c * hw;
        const float* gn = gs + step * g * hw;
        for (int64_t i = 0; i < hw; ++i) ys[i] = (xs[i] - xs[i] * gs[i]) + xn[i] * gn[i];
      } else {
        for (int64_t i = 0; i < hw; ++i) ys[i] = xs[i] - xs[i] * gs[i];
      }
    }
  });
  return {y, gates};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("gsm_forward", &gsm_forward); }
"""

def _cpu_flags() -> str:
    """The CPU's instruction-set flags (Linux), else the processor's name: part of the build's name."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((line for line in info if line.startswith("flags")), "")
    except OSError:
        return platform.processor()


# torch caches builds by name: one per source and CPU (the build is tuned to the CPU it runs on, and a
# home directory shared between machines must not hand one CPU's build to another)
_BUILD_KEY = f"{_SOURCE}{platform.machine()}{_cpu_flags()}".encode()
_NAME = "workbench_fused_gsm_" + hashlib.sha256(_BUILD_KEY).hexdigest()[:12]
_LOCK = threading.Lock()
_KERNEL: Any = None
_ENABLED = False


def _build() -> Any:
    """The compiled extension (built once per machine and source; later loads take a second)."""
    global _KERNEL
    with _LOCK:
        if _KERNEL is None:
            from torch.utils.cpp_extension import load_inline

            try:
                _KERNEL = load_inline(_NAME, cpp_sources=[_SOURCE], extra_ldflags=["-fopenmp"],
                                      extra_cflags=["-O3", "-march=native", "-fopenmp"], verbose=False)
            except Exception as err:  # no compiler, a failed build: say so, change nothing
                raise FusedKernelError(f"the fused GSM kernel could not be built here: {err}") from err
    return _KERNEL


def available() -> bool:
    """Whether the kernel builds (or is built) here; builds it if need be."""
    try:
        _build()
    except FusedKernelError:
        return False
    return True


def enable() -> None:
    """Use the fused kernel for every eligible GSM inference call from now on (builds it if need be)."""
    global _ENABLED
    _build()
    _ENABLED = True


def disable() -> None:
    """Back to the eager path everywhere."""
    global _ENABLED
    _ENABLED = False


def enabled() -> bool:
    """Whether eligible GSM calls take the fused kernel."""
    return _ENABLED


@contextmanager
def using(on: bool = True) -> Iterator[None]:
    """Within the block the fused kernel is on (or off, with on=False); the previous state after it."""
    before = _ENABLED
    enable() if on else disable()
    try:
        yield
    finally:
        globals()["_ENABLED"] = before


def eligible(module: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether this call of a GateShift may take the fused kernel: enabled, inference, eval BN with
    running statistics, float32 CPU, and no hooks on the parts whose outputs analyses read."""
    if not _ENABLED or module.training or torch.is_grad_enabled() or x.device.type != "cpu":
        return False
    if x.dtype != torch.float32 or module.bn.running_mean is None or torch.is_autocast_enabled("cpu"):
        return False
    parts = (module, module.bn, module.relu, module.conv3D, module.gate)
    return not any(p._forward_hooks or p._forward_pre_hooks for p in parts) and not _global_hooks()


def _global_hooks() -> bool:
    from torch.nn.modules import module as nn_module

    return bool(nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks)


def fused_forward(module: torch.nn.Module, x: torch.Tensor, frames: int) -> torch.Tensor:
    """y (B*T, C, H, W) of a GateShift (without its official interleave) through the kernel."""
    bn, conv = module.bn, module.conv3D
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        scale = bn.weight * scale
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
    groups = conv.groups
    taps = conv.weight.reshape(groups, x.shape[1] // groups, 27).transpose(1, 2).contiguous()
    y, _ = _build().gsm_forward(x.contiguous(), scale.contiguous(), shift.contiguous(), taps,
                                conv.bias.contiguous(), int(frames))
    return y


if os.environ.get("WORKBENCH_FUSED_GSM", "").strip() in {"1", "true", "yes", "on"}:
    enable()
