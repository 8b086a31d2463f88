"""InceptionV3 with the Caffe-style layer ids of the GSM/GSF releases (`mixed_4_tower_1_conv_2_Conv2D`, ...).

Units are conv `x_Conv2D` -> [gate `gsm_x_Conv2D` / `gsf_x_Conv2D`] -> BN `x_batchnorm` -> ReLU;
pooling rounds up (Caffe). The GSM release gates the first 1x1 conv of blocks mixed..mixed_10 (the
first reduce conv in the grid-reduction blocks mixed_3 and mixed_8) except mixed_6: 10 gates. The
GSF release gates the first conv of every block, mixed_6 included, and in mixed_3 the 3x3/2 conv
`mixed_3_conv` rather than its tower: 11 modules. Input 229 px, where the final 6x6 average pool is
exactly global (GSF's pool is global at any size).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .bninception import CaffeUnits

FEATURE_DIM = 2048
# blocks whose first unit carries a gate in the release
GATED_BLOCKS = ("mixed", "mixed_1", "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_7", "mixed_8",
                "mixed_9", "mixed_10")
Unit = tuple[str, int, tuple[int, int], int, tuple[int, int]]  # name, width, kernel, stride, padding


def _u(name: str, cout: int, kernel: tuple[int, int] = (1, 1), stride: int = 1,
       pad: tuple[int, int] | None = None) -> Unit:
    """A unit spec; padding defaults to 'same' for stride 1 kernels."""
    return name, cout, kernel, stride, pad if pad is not None else (kernel[0] // 2, kernel[1] // 2)


class Branch:
    """Optional pooling, a chain of units, and optional parallel heads whose outputs are concatenated."""

    def __init__(self, chain: list[Unit], pool: nn.Module | None = None, heads: list[Unit] | None = None):
        self.chain, self.pool, self.heads = chain, pool, heads or []


class InceptionV3(CaffeUnits):
    """InceptionV3 backbone (B*T, 3, H, W) -> (B*T, 2048) with the GSM release's 10 or GSF's 11 modules."""

    CONV = "_Conv2D"
    BN = "_batchnorm"

    def __init__(self, temporal: str = "gsm", gsf_channels: Mapping[str, int] | None = None) -> None:
        super().__init__(temporal, gsf_channels)
        self.add_unit("conv", 3, 32, 3, 2, 0)
        self.add_unit("conv_1", 32, 32, 3, 1, 0)
        self.add_unit("conv_2", 32, 64, 3, 1, 1)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.add_unit("conv_3", 64, 80, 1)
        self.add_unit("conv_4", 80, 192, 3, 1, 0)
        self.pool_1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.blocks: list[tuple[str, list[Branch]]] = []
        cin = 192
        for i, proj in enumerate((32, 64, 64)):
            cin = self._add(self._block_a(f"mixed_{i}" if i else "mixed", proj), cin)
        cin = self._add(self._block_b(), cin)
        for i, width in zip(range(4, 8), (128, 160, 160, 192)):
            cin = self._add(self._block_c(f"mixed_{i}", width), cin)
        cin = self._add(self._block_d(), cin)
        for i in (9, 10):
            cin = self._add(self._block_e(f"mixed_{i}", "ave" if i == 9 else "max"), cin)
        if cin != FEATURE_DIM:
            raise AssertionError(f"InceptionV3 table ends with {cin} channels, not {FEATURE_DIM}")
        self.top_cls_pool: nn.Module = (
            nn.AdaptiveAvgPool2d(1) if temporal == "gsf" else nn.AvgPool2d(6, 1, ceil_mode=True)
        )

    @staticmethod
    def _stride1_pool(kind: str) -> nn.Module:
        if kind == "max":
            return nn.MaxPool2d(3, 1, 1, ceil_mode=True)
        return nn.AvgPool2d(3, 1, 1, ceil_mode=True)

    def _block_a(self, m: str, proj: int) -> tuple[str, list[Branch]]:
        return m, [
            Branch([_u(f"{m}_conv", 64)]),
            Branch([_u(f"{m}_tower_conv", 48), _u(f"{m}_tower_conv_1", 64, (5, 5))]),
            Branch([_u(f"{m}_tower_1_conv", 64), _u(f"{m}_tower_1_conv_1", 96, (3, 3)),
                    _u(f"{m}_tower_1_conv_2", 96, (3, 3))]),
            Branch([_u(f"{m}_tower_2_conv", proj)], pool=self._stride1_pool("ave")),
        ]

    def _block_b(self) -> tuple[str, list[Branch]]:
        m = "mixed_3"
        return m, [
            Branch([_u(f"{m}_conv", 384, (3, 3), 2, (0, 0))]),
            Branch([_u(f"{m}_tower_conv", 64), _u(f"{m}_tower_conv_1", 96, (3, 3)),
                    _u(f"{m}_tower_conv_2", 96, (3, 3), 2, (0, 0))]),
            Branch([], pool=nn.MaxPool2d(3, 2, ceil_mode=True)),
        ]

    def _block_c(self, m: str, c: int) -> tuple[str, list[Branch]]:
        row, col = (1, 7), (7, 1)
        t, t1 = f"{m}_tower_conv", f"{m}_tower_1_conv"
        return m, [
            Branch([_u(f"{m}_conv", 192)]),
            Branch([_u(t, c), _u(f"{t}_1", c, col), _u(f"{t}_2", 192, row)]),
            Branch([_u(t1, c), _u(f"{t1}_1", c, row), _u(f"{t1}_2", c, col), _u(f"{t1}_3", c, row),
                    _u(f"{t1}_4", 192, col)]),
            Branch([_u(f"{m}_tower_2_conv", 192)], pool=self._stride1_pool("ave")),
        ]

    def _block_d(self) -> tuple[str, list[Branch]]:
        m = "mixed_8"
        return m, [
            Branch([_u(f"{m}_tower_conv", 192), _u(f"{m}_tower_conv_1", 320, (3, 3), 2, (0, 0))]),
            Branch([_u(f"{m}_tower_1_conv", 192), _u(f"{m}_tower_1_conv_1", 192, (7, 1)),
                    _u(f"{m}_tower_1_conv_2", 192, (1, 7)),
                    _u(f"{m}_tower_1_conv_3", 192, (3, 3), 2, (0, 0))]),
            Branch([], pool=nn.MaxPool2d(3, 2, ceil_mode=True)),
        ]

    def _block_e(self, m: str, pool: str) -> tuple[str, list[Branch]]:
        return m, [
            Branch([_u(f"{m}_conv", 320)]),
            Branch([_u(f"{m}_tower_conv", 384)],
                   heads=[_u(f"{m}_tower_mixed_conv", 384, (3, 1)),
                          _u(f"{m}_tower_mixed_conv_1", 384, (1, 3))]),
            Branch([_u(f"{m}_tower_1_conv", 448), _u(f"{m}_tower_1_conv_1", 384, (3, 3))],
                   heads=[_u(f"{m}_tower_1_mixed_conv", 384, (3, 1)),
                          _u(f"{m}_tower_1_mixed_conv_1", 384, (1, 3))]),
            Branch([_u(f"{m}_tower_2_conv", 192)], pool=self._stride1_pool(pool)),
        ]

    def _gated(self, block: str, branch: int, index: int, unit: str) -> bool:
        """Whether unit `unit` (position `index` in branch `branch` of `block`) carries the release's gate."""
        if self.temporal == "gsf":
            # mixed_8's first branch starts with its tower conv, so "first conv of branch 0" covers it
            return branch == 0 and index == 0
        if block in ("mixed_3", "mixed_8"):
            return unit == f"{block}_tower_conv"
        return block in GATED_BLOCKS and branch == 0 and index == 0

    def _add(self, block: tuple[str, list[Branch]], cin: int) -> int:
        name, branches = block
        cout = 0
        for b, branch in enumerate(branches):
            if branch.pool is not None:
                # pooling layers have no parameters; their names only need to be unique
                self.add_module(f"{name}_pool{b}", branch.pool)
            width = cin
            for i, (unit, w, kernel, stride, pad) in enumerate(branch.chain):
                gated = self._gated(name, b, i, unit)
                width = self.add_unit(unit, width, w, kernel, stride, pad, gated=gated)
            if branch.heads:
                cout += sum(self.add_unit(u, width, w, k, s, p) for u, w, k, s, p in branch.heads)
            else:
                cout += width
        self.blocks.append((name, branches))
        self.add_stage(name)
        return cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.chain(["conv", "conv_1", "conv_2"], x))
        x = self.pool_1(self.chain(["conv_3", "conv_4"], x))
        for name, branches in self.blocks:
            outs: list[torch.Tensor] = []
            for branch in branches:
                h = branch.pool(x) if branch.pool is not None else x
                h = self.chain([u[0] for u in branch.chain], h)
                outs.extend([self.unit(u[0], h) for u in branch.heads] if branch.heads else [h])
            x = self.stage(name, outs)
        return self.top_cls_pool(x).flatten(1)
