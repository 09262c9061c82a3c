"""cfdkit: counterfactual datasets.

Which few training labels, had they been different, would have changed this
prediction?  See ``README.md`` for the tour.
"""

__version__ = "0.1.0"
