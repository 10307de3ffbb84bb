"""The generator of a grid sweep capped by ``--max-concurrent``: Tune's own
(``BasicVariantGenerator``, what ``max_concurrent_trials`` uses), except on restore.

The saved generator state holds the ids of the trials live when it was saved. After a killed
driver, that set can hold a trial whose end the driver never recorded; restored, it counts
against the cap forever, and ``hkmr sweep --max-concurrent 1 --resume`` waited without end for
a free slot (Tune's controller blocks for the next trial, the resumed trial waits for the
controller). Here the restored set is emptied: the restored unfinished trials are Tune's to
resume, and at worst they run beside up to ``max_concurrent`` new ones, once.
"""

from __future__ import annotations

from ray.tune.search import BasicVariantGenerator


class ResumableGrid(BasicVariantGenerator):
    def set_state(self, state):
        super().set_state(state)
        self._live_trials = set()
