"""cfdkit_widgets: ipywidgets explorers over the public cfdkit API.

* :class:`FlipExplorer` -- one test point, its flip set ``S_t``, the probability path, Verify by retraining.
* :class:`NoiseSweepExplorer`, :class:`GroupBiasExplorer`, :class:`MethodComparisonExplorer`,
  :class:`RelabelRemoveExplorer` -- run a study from ``cfdkit.studies`` with chosen
  sizes/seeds and show its table and figure.
* :class:`NeuralCFDExplorer` -- a small ReLU network (``cfdkit.neural.NeuralCFD``): the ranking of one
  test case, the search for a counterfactual dataset, the flipped rows next to the test row.

Each widget is a thin view over small pure functions (also exported here) that
are tested on their own.  Show a widget by leaving it as the last expression
of a cell, or with ``display(explorer.widget)``.
"""

from .flip import (
    ExplorerError,
    FlipExplorer,
    describe_rows,
    flip_set_table,
    path_figure,
    point_summary,
    probability_path,
    search_texts,
    verify_point,
)
from .neural import (
    LABEL_NAMES,
    RANKING_CHOICES,
    NeuralCFDExplorer,
    NeuralData,
    check_index,
    flip_comparison,
    load_neural_data,
    logit_summary,
    ranking_table,
    top_ranked,
)
from .studies import (
    noise_sweep_runs,
    relabel_remove_table,
    tag_bias_points,
    GroupBiasExplorer,
    MethodComparisonExplorer,
    NoiseSweepExplorer,
    RelabelRemoveExplorer,
    StudyExplorer,
    parse_float_list,
    summarize_method_comparison,
    summarize_noise_sweep,
    summarize_relabel_remove,
    summarize_tag_bias,
)

__all__ = [
    "LABEL_NAMES",
    "RANKING_CHOICES",
    "NeuralCFDExplorer",
    "NeuralData",
    "check_index",
    "flip_comparison",
    "load_neural_data",
    "logit_summary",
    "ranking_table",
    "top_ranked",
    "GroupBiasExplorer",
    "MethodComparisonExplorer",
    "NoiseSweepExplorer",
    "RelabelRemoveExplorer",
    "StudyExplorer",
    "parse_float_list",
    "summarize_method_comparison",
    "summarize_noise_sweep",
    "summarize_relabel_remove",
    "summarize_tag_bias",
    "noise_sweep_runs",
    "relabel_remove_table",
    "tag_bias_points",
    "ExplorerError",
    "FlipExplorer",
    "describe_rows",
    "flip_set_table",
    "path_figure",
    "point_summary",
    "probability_path",
    "search_texts",
    "verify_point",
]
