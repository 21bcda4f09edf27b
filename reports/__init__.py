"""HTML and PNG rendering of plain results (dicts, DataFrames, arrays).

Imports neither featsel nor generation: ``build_report(results, out_dir)`` takes the plain dict
that ``featsel score`` writes to ``results.json``; ``render_validation_report(validation,
out_dir)`` the one ``featsel validate`` writes to ``validation.json``;
``render_selection_report(selection, out_dir)`` the one ``featsel select`` writes to
``selection.json``; ``render_dir(DIR)`` (`featsel report DIR`) re-renders whichever of them
DIR holds, from its files alone.
"""

from reports.folders import render_dir
from reports.html import build_figures, build_report, render_html
from reports.selection_html import render_selection_dir, render_selection_report
from reports.validation_html import render_validation_dir, render_validation_report

__all__ = ["build_figures", "build_report", "render_dir", "render_html", "render_selection_dir",
           "render_selection_report", "render_validation_dir", "render_validation_report"]
