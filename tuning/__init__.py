"""The Ray layer: Ray Tune sweeps whose trials train hkmr, aggregated into the paper's tables.

Only this package imports Ray; the ``hkmr`` library does not.
"""
