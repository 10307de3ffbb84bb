"""The confirmatory family an experiment declares: the comparisons its claim is about.

Declared in the experiment file before any data, e.g. Table 2's::

    confirmatory:
      comparisons: [No joint hierarchy, Forward only, Discriminator]  # each against reference
      metric: mpjpe          # the primary endpoint's metric ...
      test_set: standard     # ... on this test set ...
      protocols: [P1, P2]    # ... at these protocols

Its members (configuration x protocol) are tested together (:mod:`tuning.stats.family`: Holm
over the family, t and sign-flip); every other comparison a table shows is descriptive
(intervals, no tests). Without the key an experiment with a ``reference`` confirms each other
configuration on its ``primary`` endpoint's metric and test set, at P1 and P2.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hkmr.config import ConfigError
from hkmr.eval.suites import COLUMNS as OCCLUSIONS

PROTOCOLS = ("P1", "P2")
TEST_SETS = ("standard",) + tuple(OCCLUSIONS)


@dataclass(frozen=True)
class Confirmatory:
    comparisons: tuple[str, ...]
    reference: str
    metric: str = "mpjpe"
    test_set: str = "standard"
    protocols: tuple[str, ...] = PROTOCOLS
    declared: bool = True  # False: the default family of an experiment without the key

    def restricted(self, configurations) -> Confirmatory:
        """The family without the comparisons of configurations that did not run."""
        return dataclasses.replace(self, comparisons=tuple(
            n for n in self.comparisons if n in configurations))

    def keys(self) -> list[str]:
        """The trial metric keys of the family's endpoint, one per protocol."""
        return [f"{p}_{self.test_set}_{self.metric}" for p in self.protocols]

    def members(self) -> list[tuple[str, str]]:
        """(configuration, metric key) of every comparison in the family."""
        return [(name, key) for name in self.comparisons for key in self.keys()]

    def __len__(self) -> int:
        return len(self.members())

    def to_dict(self) -> dict[str, Any]:
        return {"comparisons": list(self.comparisons), "metric": self.metric,
                "test_set": self.test_set, "protocols": list(self.protocols)}

    def describe(self) -> str:
        names = ", ".join(self.comparisons)
        return (f"{self.metric.replace('_', '-').upper()}, {self.test_set} test set, "
                f"{' and '.join(self.protocols)}: {names} against {self.reference}")


def confirmatory_family(raw: dict[str, Any] | None, reference: str | None, primary: str,
                        configurations: list[str], where: str) -> Confirmatory | None:
    """The experiment's family from its ``confirmatory:`` mapping (None: the default; an
    experiment without a reference has none)."""
    if not reference:
        if raw:
            raise ConfigError(f"{where}: 'confirmatory' needs a 'reference' configuration")
        return None
    if raw is None:
        protocol, rest = primary.split("_", 1)
        test_set, metric = rest.split("_", 1)
        return Confirmatory(tuple(n for n in configurations if n != reference), reference,
                            metric, test_set, declared=False)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'confirmatory' must be a mapping, got {raw!r}")
    known = {"comparisons", "metric", "test_set", "protocols"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: confirmatory: unknown keys {unknown}; known: {sorted(known)}")
    comparisons = tuple(raw.get("comparisons") or [n for n in configurations if n != reference])
    bad = [n for n in comparisons if n not in configurations or n == reference]
    if bad:
        raise ConfigError(f"{where}: confirmatory.comparisons {bad} are not configurations "
                          f"other than the reference {reference!r}: "
                          f"{[n for n in configurations if n != reference]}")
    protocols = tuple(raw.get("protocols") or PROTOCOLS)
    if not protocols or set(protocols) - set(PROTOCOLS):
        raise ConfigError(f"{where}: confirmatory.protocols {list(protocols)} must be from "
                          f"{list(PROTOCOLS)}")
    test_set = raw.get("test_set", "standard")
    if test_set not in TEST_SETS:
        raise ConfigError(f"{where}: confirmatory.test_set {test_set!r}: one of {list(TEST_SETS)}")
    metric = raw.get("metric", "mpjpe")
    if metric not in ("mpjpe", "pa_mpjpe", "occluded_mpjpe"):
        raise ConfigError(f"{where}: confirmatory.metric {metric!r}: one of mpjpe, pa_mpjpe, "
                          "occluded_mpjpe")
    return Confirmatory(comparisons, reference, metric, test_set, protocols)
