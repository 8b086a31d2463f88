"""Inside GSM/GSF: gates captured on a private view of the model, their statistics, routing, alignment
with motion, and interventions. The public face of the package.

capture        gates, inputs and outputs of every gated operator on a clip
stats          statistics per layer, group and frame; histograms; gate maps
routing        how much feature energy moves between frames, learned (GSM/GSF) against TSM's shift
alignment      do gates follow motion and the object?
interventions  force the gates and see what changes (one clip, a dataset)
report         everything for one clip (the Gates page, the `gates` command)
"""

from .alignment import *
from .capture import *
from .interventions import *
from .report import *
from .routing import *
from .stats import *
