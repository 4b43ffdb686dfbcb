"""simtrain's matplotlib pictures: a bare Agg figure (no pyplot state: safe in threads), fixed margins, PNG
bytes, and the labelled matrix heatmap drawn for the similarity preview and the confusion matrix artifact.

    fig = figure(8, 3)                                   # inches, at 80 dpi
    set_margins(fig, left=0.55, right=0.15, bottom=0.5, top=0.3)
    png = png_bytes(fig)
    png = png_bytes(matrix_heatmap(sim, classes, title="similarity: ordinal", vmin=0.0, vmax=1.0))

The pictures are drawn for speed (they are on the path of every finished job): fixed margins computed from
the label lengths instead of tight_layout (a whole extra draw), few ticks, cell values only for small
matrices, PNG compression level 1. matplotlib is imported on first use, not with this module.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["DPI", "LABELLED_MAX", "figure", "matrix_heatmap", "png_bytes", "set_margins"]

DPI = 80
LABELLED_MAX = 40  # one labelled tick per class up to this many; a few integer ticks beyond


def figure(width: float, height: float, *, dpi: int = DPI) -> Any:
    """A matplotlib Figure of `width` x `height` inches on its own Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    """`fig` as PNG bytes at its own dpi (no "Software" metadata, fast compression)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def set_margins(fig: Any, left: float, right: float, bottom: float, top: float, **kw: float) -> None:
    """Fixed subplot margins in inches (`subplots_adjust` takes figure fractions); `kw` e.g. wspace."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, **kw
    )


def matrix_heatmap(
    matrix: Any,
    labels: list[str],
    *,
    title: str,
    xlabel: str = "",
    ylabel: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    value_format: str = "{:.2f}",
    annotate_max: int = 15,
    white_above: float = 0.5,
    label_chars: int = 12,
    dpi: int = DPI,
) -> Any:
    """A Figure of the n x n `matrix` with rows and columns labelled by `labels` and a colour bar.

    `vmin` / `vmax` fix the colour scale (default: the data's range). Up to `annotate_max` classes each
    cell shows its value (`value_format`), white on cells above `white_above` times `vmax` (or the largest
    value). Labels longer than `label_chars` are cut with an ellipsis; beyond LABELLED_MAX classes the axes
    get a few integer ticks instead.
    """
    n = len(labels)
    data = np.asarray(matrix, dtype=np.float64).reshape(n, n)
    short = [c if len(c) <= label_chars else c[: label_chars - 1] + "\u2026" for c in labels]
    fig, ax = _heatmap_axes(data, short, dpi=dpi, vmin=vmin, vmax=vmax)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    _ticks(ax, short)
    if 0 < n <= annotate_max:
        top = vmax if vmax is not None else float(data.max(initial=0.0))
        _annotate(ax, data, value_format, white_above * top if top > 0 else float("inf"))
    return fig


def _heatmap_axes(data: np.ndarray, labels: list[str], *, dpi: int, vmin, vmax) -> tuple[Any, Any]:
    """Figure and image axes sized to the matrix, margins wide enough for the tick labels, a colour bar."""
    n = len(labels)
    # room for the tick labels (~0.06 in per character at fontsize 7) or for short integer ticks
    label_in = 0.08 + 0.06 * max((len(c) for c in labels), default=1) if 0 < n <= LABELLED_MAX else 0.3
    side = min(3.2 + 0.2 * n, 9.0)  # the matrix itself, in inches
    left, bottom, right, top = 0.3 + label_in, 0.3 + label_in, 0.9, 0.35
    fig = figure(left + side + right, bottom + side + top, dpi=dpi)
    width, height = fig.get_size_inches()
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    cax = fig.add_axes(((left + side + 0.1) / width, bottom / height, 0.15 / width, side / height))
    image = ax.imshow(data, cmap="Blues", interpolation="nearest", aspect="auto", vmin=vmin, vmax=vmax)
    fig.colorbar(image, cax=cax)
    cax.tick_params(labelsize=7)
    return fig, ax


def _ticks(ax: Any, labels: list[str]) -> None:
    from matplotlib.ticker import MaxNLocator

    n = len(labels)
    if 0 < n <= LABELLED_MAX:
        ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels, fontsize=7)
        return
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    ax.tick_params(labelsize=7)


def _annotate(ax: Any, data: np.ndarray, value_format: str, white_from: float) -> None:
    n = len(data)
    fontsize = 8 if n <= 12 else 6
    for i in range(n):
        for j in range(n):
            v = float(data[i, j])
            color = "white" if v > white_from else "black"
            ax.text(j, i, value_format.format(v), ha="center", va="center", color=color, fontsize=fontsize)
