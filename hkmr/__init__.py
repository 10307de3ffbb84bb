"""hkmr: Hierarchical Kinematic Human Mesh Recovery (Georgakis et al.), the library.

This package never imports Ray; the Ray Tune/Train layer lives in the ``tuning`` package.
"""

__version__ = "0.1.0"
