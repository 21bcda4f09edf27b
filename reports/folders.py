"""`featsel report DIR`: re-render the report of a result folder from the files in it.

What a folder holds says which command made it: ``validation.json`` (featsel validate),
``selection.json`` (featsel select), else ``results.json`` (featsel score). The figures are
redrawn from the saved results (and, for a validation, the figure data beside them).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["read_result", "output_dir", "render_dir"]


def read_result(folder: str | os.PathLike, name: str, command: str) -> dict:
    """``folder/name`` as a dict; FileNotFoundError naming ``command`` (what writes it) when
    it is missing, ValueError when it is not JSON (one line, naming DIR)."""
    path = Path(folder) / name
    if not path.is_file():
        raise FileNotFoundError(f"DIR: no {name} in {str(folder)!r} (run {command})")
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"DIR: {str(path)!r} is not valid JSON: {err}") from err


def output_dir(result: Any, name: str, key: str, command: str,
               out_dir: str | os.PathLike) -> Path:
    """Check that ``result`` is the dict ``command`` writes to ``<name>.json`` (a mapping with a
    ``key`` list; ValueError naming ``name`` otherwise) and make ``out_dir``; returns it."""
    if not isinstance(result, Mapping) or not isinstance(result.get(key), list):
        raise ValueError(f"{name}: expected the dict of {name}.json with a {key!r} list "
                         f"(the output of {command})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def render_dir(folder: str | os.PathLike) -> Path:
    """Re-render the report of ``folder`` (module docstring); returns the page's path."""
    from reports.html import build_report
    from reports.selection_html import render_selection_dir
    from reports.validation_html import render_validation_dir

    kinds: list[tuple[str, Callable[[str | os.PathLike], Path]]] = [
        ("validation.json", render_validation_dir), ("selection.json", render_selection_dir)]
    for name, render in kinds:
        if (Path(folder) / name).is_file():
            return render(folder)
    return build_report(read_result(folder, "results.json", "featsel score"), folder)
