"""Frame-order experiments: does a model use frame order? The public face of the package.

config   what an experiment is (settings, result, the orders of a video)
classes  dataset labels in each model's terms
decoding each video decoded once for the runner
scoring  a chunk of videos through every model: the results rows
runner   run_experiment: chunked, resumable, distributed
store    the run directory's tables
stats    summary, class sensitivity, model comparisons
one_video  one video under every perturbation, for looking at
"""

from .config import *
from .one_video import *
from .runner import *
from .stats import *
from .store import *
