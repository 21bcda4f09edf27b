"""Publish a `featsel validate` sweep: ``validation.json`` and ``validation.csv`` (atomic), and
the HTML page with its figures, drawn by ``reports`` from those files."""

from __future__ import annotations

from pathlib import Path

from featsel.rundir import atomic_save
from generation.run import write_json

__all__ = ["write_outputs", "render"]


def write_outputs(report: dict, out: Path) -> None:
    """``out/validation.json`` (strict JSON) and ``out/validation.csv`` (the table)."""
    import pandas as pd

    write_json(out / "validation.json", report)
    atomic_save(out / "validation.csv",
                lambda tmp: pd.DataFrame(report["table"]).to_csv(tmp, index=False))


def render(report: dict, out: Path, score: dict) -> None:
    """``out/validation.html`` beside validation.json (Delta_OT intervals from the score
    table); the figures are drawn from the data ``figures.figure_data`` saved."""
    from reports import render_validation_report

    render_validation_report(report, out, score_table=score["ranking"].get("table"))
