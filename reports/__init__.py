"""HTML and PNG rendering of plain results (dicts, DataFrames, arrays).

Imports neither featsel nor generation: ``build_report(results, out_dir)`` takes the plain dict
that ``featsel score`` writes to ``results.json``.
"""

from reports.html import build_figures, build_report, render_html

__all__ = ["build_figures", "build_report", "render_html"]
