"""The lines a results table carries about how its seeds were sized (``--target-mde``,
:mod:`tuning.procedures.seed_sizing`) and extended (``--extend``,
:mod:`tuning.procedures.extend_seeds`), rendered from the records those procedures write."""

from __future__ import annotations

import math


def power_statement(record: dict) -> str:
    """The line a table carries about how its seeds were sized."""
    value = record["mde"]
    shown = f"{value:.2f} mm" if value is not None and math.isfinite(value) else "not computable"
    if record.get("rule") == "worst":
        what = (f"the worst minimal detectable paired difference of the confirmatory family "
                f"(each comparison's own seed SD, two-sided t at α/{record['family']}) is "
                f"{shown}, {record['comparison']}")
    else:  # sized before confirmatory families
        what = (f"the minimal detectable paired difference of `{record['endpoint']}` against "
                f"{record['reference']} was {shown} by the rule then in use (the paired SD "
                f"pooled over the comparisons, one comparison at an unadjusted 5 %: not the "
                f"Holm-aware MDE the confirmatory family below states)")
    return (f"Seeds sized by `--target-mde {record['target_mde']:g}` (max "
            f"{record['max_seeds']}): {record['seeds']} seeds; {what}; stopped because "
            f"{record['stopped_by']}.\n\n")


def extension_statement(record: dict) -> str:
    """The line a table carries about an extension of its seeds."""
    kept, seeds = record["seeds_kept"], record["seeds"]
    text = (f"Extended by `{record.get('command') or 'hkmr sweep --extend'}` at git revision "
            f"`{record.get('git_revision')}` on {record.get('date')}: seeds 0–{kept - 1} kept "
            "from the results folder")
    check = record.get("reproduction")
    if seeds <= kept or not check:
        return text + ", no seeds added.\n\n"
    values = "; ".join(f"`{k}` {check['reproduced'][k]:.4f} mm (kept {check['kept'][k]:.4f})"
                       for k in check["kept"])
    return (text + f", seeds {kept}–{seeds - 1} added after the reproduction check: "
            f"{check['configuration']} seed 0 retrained at `{check['revision']}` gave {values}, "
            f"the kept trial was made at `{check['kept_revision']}` (tolerance "
            f"{check['tolerance_mm']:g} mm).\n\n")
