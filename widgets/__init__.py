"""cfdkit_widgets: ipywidgets explorers over the public cfdkit API.

* :class:`FlipExplorer` (:mod:`.flip`) -- one test point, its flip set ``S_t``, the probability path,
  Verify by retraining.
* :class:`NoiseSweepExplorer`, :class:`GroupBiasExplorer`, :class:`MethodComparisonExplorer`,
  :class:`RelabelRemoveExplorer` (:mod:`.studies`) -- run a study from ``cfdkit.studies`` with chosen
  sizes/seeds and show its table (the study's own column names) and its ``cfdkit.plots`` figure.
* :class:`NeuralCFDExplorer` (:mod:`.neural`) -- a small ReLU network (``cfdkit.neural.NeuralCFD``): the
  ranking of one test case, the search for a counterfactual dataset, the flipped rows next to the test row.

* :class:`SpuriousExplorer` (:mod:`.spurious`), :class:`AlignmentExplorer` (:mod:`.spurious_alignment`),
  :class:`NeuronTuneExplorer` (:mod:`.spurious_neurontune`) -- the spurious-bias family: bias read from a
  zoo's weights, Latent Shift counterfactuals and alignment, NeuronTune's biased neurons and the bridge.

Each widget is a thin view over small pure functions (exported too) that are tested on their own.
Show a widget by leaving it as the last expression of a cell, or with ``display(explorer.widget)``.

This module only re-exports each submodule's ``__all__``: a new explorer is a new module here
plus one line below.
"""

from . import flip, neural, spurious, spurious_alignment, spurious_neurontune, studies
from .flip import *  # noqa: F401,F403
from .neural import *  # noqa: F401,F403
from .spurious import *  # noqa: F401,F403
from .spurious_alignment import *  # noqa: F401,F403
from .spurious_neurontune import *  # noqa: F401,F403
from .studies import *  # noqa: F401,F403

__all__ = [*flip.__all__, *neural.__all__, *studies.__all__, *spurious.__all__, *spurious_alignment.__all__,
           *spurious_neurontune.__all__]
