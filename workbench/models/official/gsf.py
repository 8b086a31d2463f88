"""GSF as the GSF release names it: our GateShiftFuse with `channel_conv1/2` fusion convs.

The release gates the first `active` channels of a layer (its `gsf_ch_ratio`, rounded down, then
up to even) and passes the rest through; the fusion weight of group 1 (shifted back in time) comes
from `channel_conv1`, of group 2 (shifted forward) from `channel_conv2`; the fused halves of each
group are interleaved channel by channel. Our GateShiftFuse computes the same function; only the
fusion convs' names differ, so this subclass re-registers them under the release's names.
"""

from __future__ import annotations

from torch import nn

from ..temporal import GateShiftFuse


class ReleaseGSF(GateShiftFuse):
    """GSF on the first `active` of `channels` channels, parameters named like the GSF release."""

    def __init__(self, channels: int, active: int) -> None:
        if active % 2 or not 0 < active <= channels:
            raise ValueError(f"GSF gates an even number of channels in 2..{channels}, not {active}")
        # GateShiftFuse rounds channels * ratio / 100 down: half a channel of slack keeps float
        # rounding from ever landing on active - 1
        super().__init__(channels, 2, (active + 0.5) * 100 / channels, interleave=True)
        if self.channels != active:
            raise AssertionError(f"GSF built with {self.channels} gated channels, wanted {active}")
        del self.fusion
        self.channel_conv1 = nn.Conv2d(2, 1, 3, padding=1)
        self.channel_conv2 = nn.Conv2d(2, 1, 3, padding=1)
        # a plain list (not a ModuleList) so the convs keep their release names in the state dict
        self.fusion = [self.channel_conv1, self.channel_conv2]

    @property
    def channel_ratio(self) -> float:
        """Percent of the layer's channels that take part in GSF."""
        return 100.0 * self.channels / self.total_channels
