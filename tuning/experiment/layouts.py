"""Typed table layouts: how an experiment's ``tables:`` lay the aggregated metrics out.

One class per layout, registered by its ``layout:`` name. A layout knows the configurations it
shows, the metric keys its cells read, how it renders (mean ± 95 % CI over seeds,
:mod:`tuning.stats.intervals`) and its **paired section**: per seed, configuration minus the
table's ``reference``, as the mean and 95 % interval of the difference over the sources of
error the results folder has (seeds, or seeds x test images: :mod:`tuning.analysis.estimates`).
The paired sections are descriptive: no tests, no stars. The tests are the experiment's
confirmatory family's (:mod:`tuning.analysis.confirmatory_section`), in a section of its own.

The layouts:

* ``columns`` (the default; Tables 2-3): configurations as columns (a list, or a mapping of
  column label -> configuration), P1 and P2 of the standard test set as rows; ``plot:`` draws
  the columns against their labels (Table 3's iterations).
* ``rows_are_configurations`` (Table 1): configurations as rows, each of the table's
  ``occlusions`` (default: the standard set and every occluder) at P1 and P2 as columns.
* ``invisible`` (Table 4, right): the self-occluded joints' 2D error and PCK; no reference.

A new layout is one subclass of :class:`TableLayout` decorated with :func:`register`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hkmr.config import ConfigError
from hkmr.eval.results import format_value as fmt
from hkmr.eval.results import markdown_table
from hkmr.eval.suites import COLUMNS as OCCLUSIONS

from ..stats.crossed import SEEDS, Difference, seeds_only
from ..stats.intervals import cell
from ..stats.paired import differences

PROTOCOLS = ("P1", "P2")
_DASH = "—"
LAYOUTS: dict[str, type[TableLayout]] = {}


def register(cls: type[TableLayout]) -> type[TableLayout]:
    LAYOUTS[cls.layout] = cls
    return cls


def format_difference(d: Difference, digits: int = 2) -> str:
    """``-2.00 ± 0.40 (n=3)``: the mean and the half-width of its 95 % interval (no ``|``:
    the text stands in a Markdown table cell)."""
    if d.n == 0 or not math.isfinite(d.mean):
        return _DASH
    if not d.testable:
        return f"{d.mean:+.{digits}f} (n={d.n})"
    low, high = d.interval()
    return f"{d.mean:+.{digits}f} ± {(high - low) / 2:.{digits}f} (n={d.n})"


def seed_estimate(rows: list[dict], reference: str):
    """Seed-only paired differences of ``rows`` against ``reference`` (the estimate a table
    uses when it is given none)."""
    def estimate(configuration: str, key: str):
        d = differences(rows, configuration, reference, key)
        return seeds_only(d), d
    return estimate


@dataclass
class TableLayout:
    """A table of an experiment file. Subclasses set :attr:`layout` and implement
    :meth:`configurations`, :meth:`keys`, :meth:`cells` and, with a reference,
    :meth:`comparisons`."""

    title: str = ""
    metric: str = "mpjpe"
    reference: str | None = None
    layout: ClassVar[str] = ""
    has_reference: ClassVar[bool] = True  # whether the layout takes the experiment's reference

    # --- what the layout shows -------------------------------------------------------------
    def configurations(self) -> list[str]:
        raise NotImplementedError

    def keys(self) -> list[str]:
        """The metric keys its cells read (a folder without any renders a note instead)."""
        raise NotImplementedError

    def cells(self, rows: list[dict]) -> tuple[list[str], list[list[str]]]:
        """(header, body) of the mean ± CI table."""
        raise NotImplementedError

    def test_sets(self) -> tuple[str, ...]:
        return ("standard",)

    def to_dict(self) -> dict[str, Any]:
        """The table as an experiment file writes it."""
        values = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in dataclasses.asdict(self).items() if v is not None}
        return {"layout": self.layout, **values}

    def plot_axis(self) -> str | None:
        """The x-axis of the plot of this table (:func:`tuning.analysis.plots.plot_iterations`),
        or None for a table without one."""
        return None

    def keeping(self, names: list[str]) -> TableLayout:
        """This layout with only the configurations in ``names`` (in its own order)."""
        raise NotImplementedError

    def ran_only(self, rows: list[dict]) -> TableLayout:
        """Without the configurations no trial ran (a folder made before its experiment gained
        a column, e.g. Table 2's "No chain hierarchy", renders as it was made)."""
        ran = {r["configuration"] for r in rows}
        return self.keeping([name for name in self.configurations() if name in ran])

    # --- the paired section ------------------------------------------------------------------
    def comparisons(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(label, id) of the section's rows and of its columns; :meth:`compared` maps a
        (row id, column id) to the (configuration, metric key) it compares."""
        raise NotImplementedError

    def compared(self, row: str, col: str) -> tuple[str, str]:
        raise NotImplementedError

    def paired_section(self, rows: list[dict], estimate=None) -> str:
        """The paired differences to :attr:`reference` in this layout, descriptive.
        ``estimate(configuration, key) -> (Difference, per-seed differences)``."""
        ref = self.reference
        estimate = estimate or seed_estimate(rows, ref)
        lines, cols = self.comparisons()
        results = {(a, b): estimate(*self.compared(a, b))[0] for _, a in lines for _, b in cols}
        body = [[label] + [format_difference(results[a, b]) for _, b in cols]
                for label, a in lines]
        title = [f"Paired difference to **{ref}** (same seed; mean ± 95 % interval over "
                 f"{self._sources(results, lines, cols)}; negative = lower than {ref}). "
                 "Descriptive: per-comparison intervals, no tests.", ""]
        return "\n".join(title) + "\n" + markdown_table([""] + [h for h, _ in cols], body)

    @staticmethod
    def _sources(results: dict, lines, cols) -> str:
        """What the intervals are over; when that differs by column or row, which ones are
        over seeds only."""
        only = {key for key, d in results.items() if d.testable and d.sources == SEEDS}
        tested = {key for key, d in results.items() if d.testable}
        if not tested or only == tested:
            return "seeds (the test images fixed)"
        if not only:
            return "seeds × test images"
        labels = [label for label, b in cols if all((a, b) in only for _, a in lines)] or \
            [label for label, a in lines if all((a, b) in only for _, b in cols)]
        return ("seeds × test images; over seeds only (the test images fixed): "
                + (", ".join(labels) if labels else "some cells"))

    # --- rendering -----------------------------------------------------------------------
    def render(self, rows: list[dict], estimate=None) -> str:
        """The table over the trial rows, with its paired section when it has a reference
        (``estimate``: see :meth:`paired_section`; for this table's reference)."""
        table = self.ran_only(rows)
        title = [f"### {table.title or table.metric}", ""]
        if not any(key in r for key in table.keys() for r in rows):
            return "\n".join(title) + (f"\nNo trial here recorded `{table.metric}` (a folder "
                                       f"made before that metric, or a name no suite writes).\n")
        header, body = table.cells(rows)
        text = "\n".join(title) + "\n" + markdown_table(header, body)
        if table.reference and table.has_reference:
            text += "\n" + table.paired_section(rows, estimate)
        return text


@register
@dataclass
class ColumnsTable(TableLayout):
    """Configurations as columns, P1 and P2 of the standard test set as rows (Tables 2-3)."""

    columns: list[tuple[str, str]] = field(default_factory=list)  # (label, configuration)
    plot: str | None = None  # x-axis label: plot the columns against their labels
    layout: ClassVar[str] = "columns"

    def __post_init__(self):
        cols = self.columns
        self.columns = list(cols.items()) if isinstance(cols, dict) else \
            [tuple(c) if isinstance(c, (list, tuple)) else (c, c) for c in cols]

    def configurations(self) -> list[str]:
        return [name for _, name in self.columns]

    def plot_axis(self) -> str | None:
        return self.plot

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        same = all(label == name for label, name in self.columns)
        out["columns"] = [name for _, name in self.columns] if same else dict(self.columns)
        return out

    def keys(self) -> list[str]:
        return [f"{p}_standard_{self.metric}" for p in PROTOCOLS]

    def cells(self, rows):
        body = [[protocol] + [fmt(cell(rows, name, f"{protocol}_standard_{self.metric}"))
                              for _, name in self.columns] for protocol in PROTOCOLS]
        return [""] + [label for label, _ in self.columns], body

    def keeping(self, names):
        return dataclasses.replace(self, columns=[c for c in self.columns if c[1] in names])

    def comparisons(self):
        names = [(label, name) for label, name in self.columns if name != self.reference]
        return [(p, f"{p}_standard_{self.metric}") for p in PROTOCOLS], names

    def compared(self, row, col):
        return col, row


@register
@dataclass
class RowsTable(TableLayout):
    """Configurations as rows, each test set at P1 and P2 as columns (Table 1). Occluded-joint
    metrics have no standard column: ``occlusions: [bar, circle, rectangle]``."""

    rows: list[str] = field(default_factory=list)
    occlusions: tuple[str, ...] = OCCLUSIONS
    layout: ClassVar[str] = "rows_are_configurations"

    def __post_init__(self):
        self.occlusions = tuple(self.occlusions)
        unknown = sorted(set(self.occlusions) - set(OCCLUSIONS))
        if unknown:
            raise ConfigError(f"table '{self.title}': unknown occlusions {unknown}; known: "
                              f"{list(OCCLUSIONS)}")

    def configurations(self):
        return list(self.rows)

    def test_sets(self):
        return self.occlusions

    def columns(self) -> list[tuple[str, str]]:
        """(label, key) of each test set at P1 and P2."""
        return [(f"{occ.capitalize()} {p}", f"{p}_{occ}_{self.metric}")
                for occ in self.occlusions for p in PROTOCOLS]

    def keys(self):
        return [key for _, key in self.columns()]

    def cells(self, rows):
        cols = self.columns()
        body = [[name] + [fmt(cell(rows, name, key)) for _, key in cols] for name in self.rows]
        return [""] + [label for label, _ in cols], body

    def keeping(self, names):
        return dataclasses.replace(self, rows=[n for n in self.rows if n in names])

    def comparisons(self):
        names = [(f"{name} − {self.reference}", name) for name in self.rows
                 if name != self.reference]
        return names, self.columns()

    def compared(self, row, col):
        return row, col


@register
@dataclass
class InvisibleTable(TableLayout):
    """The self-occluded joints' 2D error (pixel) and PCK (%) per configuration (Table 4)."""

    rows: list[str] = field(default_factory=list)
    layout: ClassVar[str] = "invisible"
    has_reference: ClassVar[bool] = False

    def configurations(self):
        return list(self.rows)

    def keys(self):
        return ["invisible_mpjpe_2d_px", "invisible_pck"]

    def cells(self, rows):
        body = [[name] + [fmt(cell(rows, name, key)) for key in self.keys()]
                for name in self.rows]
        return ["", "MPJPE (pixel)", "PCK (%)"], body

    def keeping(self, names):
        return dataclasses.replace(self, rows=[n for n in self.rows if n in names])


def table_layout(raw: dict[str, Any] | TableLayout, reference: str | None = None) -> TableLayout:
    """A table of an experiment file as its layout class; ``reference``: the experiment's,
    the default of a layout that takes one."""
    if isinstance(raw, TableLayout):
        return raw
    values = dict(raw)
    name = values.pop("layout", "columns")
    if name not in LAYOUTS:
        raise ConfigError(f"table '{raw.get('title')}': unknown layout {name!r}; known: "
                          f"{', '.join(LAYOUTS)}")
    cls = LAYOUTS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"table '{raw.get('title')}' ({name}): unknown keys {unknown}; "
                          f"known: {sorted(known)}")
    if cls.has_reference and reference and "reference" not in values:
        values["reference"] = reference
    return cls(**values)
