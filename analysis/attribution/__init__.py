"""Captum attribution maps for any video model, and how good they are. The public face of the package.

methods       the method table and `attribute` (one call shape, typed options, a private view)
profiles      where in time a map puts its mass
localisation  how much of a map lies on the object
faithfulness  deletion and insertion curves
agreement     rank correlation between maps
sanity        the model-randomisation check
one_video     one video: score_clip, explain_video, attribute_video (several models and methods)
dataset       a dataset: score_dataset (resumable, distributed), summarize_scores
"""

from .agreement import *
from .dataset import *
from .faithfulness import *
from .localisation import *
from .methods import *
from .one_video import *
from .profiles import *
from .sanity import *
