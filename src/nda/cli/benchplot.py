"""`nda bench --plot FILE`: the benchmark ratios as a bar chart (matplotlib, the `pictures` extra).

In: benchmark rows as dicts (`benchsuite.rows_to_json`: bench, tier, ratio, baseline, target,
met) and a path ending in .svg or .png.
Out: the file: one horizontal bar per row that has a ratio (baseline median / this median, so
higher is faster; log scale, a line at 1×), labelled `bench · tier`, green where the row's
target is met, red where it is missed, blue where it has none. SVG text stays text (fonts are
not turned into paths), so the names can be searched. `PictureToolMissing` when matplotlib is
not installed. matplotlib's settings are changed only inside this call (`rc_context`), and no
pyplot state is touched.
"""

from __future__ import annotations

import math
from pathlib import Path

from nda.syntax.draw import PictureToolMissing

MPL_MISSING = ("matplotlib is not installed: pip install 'nda-toolchain[pictures]' "
               "(or pip install matplotlib)")
FORMATS = {".svg": "svg", ".png": "png"}


def check_plot(path: str) -> str:
    """The plot format of `path` (ValueError for another suffix; `PictureToolMissing` without
    matplotlib) — checked before the benchmarks run."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: the plot's file name must end in .svg or .png")
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise PictureToolMissing(MPL_MISSING) from e
    return fmt


def plot_ratios(rows: list[dict], path: str, title: str | None = None) -> int:
    """Write the chart of `rows` to `path` (format from its suffix); returns the bars drawn."""
    fmt = check_plot(path)
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    bars = [r for r in rows if r.get("ratio") is not None and math.isfinite(r["ratio"]) and r["ratio"] > 0]
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "nda-bench"}):
        fig = Figure(figsize=(8, 1.2 + 0.32 * max(len(bars), 1)), layout="constrained")
        ax = fig.add_subplot()
        labels = [f"{r['bench']} · {r['tier']}" for r in bars]
        values = [r["ratio"] for r in bars]
        colours = ["#6aa84f" if r.get("met") is True else "#cc0000" if r.get("met") is False else "#3d85c6"
                   for r in bars]
        ys = list(range(len(bars)))[::-1]
        ax.barh(ys, values, color=colours, left=0)
        ax.set_yticks(ys, labels)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}×"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.axvline(1.0, color="#666666", linewidth=0.8)
        for y, r in zip(ys, bars):
            ax.annotate(f"{r['ratio']:.2f}× vs {r.get('baseline') or 'baseline'}", (r["ratio"], y),
                        xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        if not bars:
            ax.text(0.5, 0.5, "no ratios measured", transform=ax.transAxes, ha="center")
        ax.set_xlabel("ratio = baseline median / median (higher is faster; log scale)")
        ax.set_title(title or "nda bench")
        if values:
            ax.set_xlim(min(values + [1.0]) / 2, max(values + [1.0]) * 4)
        fig.savefig(path, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    return len(bars)


__all__ = ["plot_ratios", "check_plot", "MPL_MISSING"]
