"""Tests of core.figures: the bare Agg figure, its PNG bytes, and the matrix heatmap both pictures use.

.venv/bin/python -m pytest tests/core/test_figures.py -q
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from core.figures import DPI, LABELLED_MAX, figure, matrix_heatmap, png_bytes, set_margins

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _texts(fig) -> list[tuple[str, str]]:
    """(text, colour) of the cell values drawn on the image axes."""
    from matplotlib.colors import to_hex

    ax = fig.axes[0]
    return [(t.get_text(), to_hex(t.get_color())) for t in ax.texts]


def test_figure_is_bare_agg_and_png_has_its_size():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figure(4, 2.5)
    assert isinstance(fig.canvas, FigureCanvasAgg) and fig.dpi == DPI
    set_margins(fig, left=0.5, right=0.25, bottom=0.5, top=0.25)
    assert fig.subplotpars.left == pytest.approx(0.5 / 4)
    assert fig.subplotpars.top == pytest.approx(1 - 0.25 / 2.5)
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    data = png_bytes(fig)
    assert data.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (4 * DPI, int(2.5 * DPI))
        assert "Software" not in img.info
    assert figure(2, 2, dpi=100).dpi == 100


def test_heatmap_fixed_scale_values_and_white_text():
    sim = np.array([[1.0, 0.5, 0.61], [0.5, 1.0, 0.25], [0.61, 0.25, 1.0]])
    fig = matrix_heatmap(sim, ["a", "b", "c"], title="similarity: x", vmin=0.0, vmax=1.0, white_above=0.6)
    image = fig.axes[0].images[0]
    assert image.get_clim() == (0.0, 1.0)
    assert fig.axes[0].get_title() == "similarity: x"
    texts = _texts(fig)
    assert [t for t, _ in texts] == ["1.00", "0.50", "0.61", "0.50", "1.00", "0.25", "0.61", "0.25", "1.00"]
    white = [t for t, colour in texts if colour == "#ffffff"]
    assert white == ["1.00", "0.61", "1.00", "0.61", "1.00"]  # above 0.6 x vmax


def test_heatmap_auto_scale_counts_and_labels():
    cm = [[8, 1], [3, 4]]
    fig = matrix_heatmap(
        cm, ["short", "a-rather-long-name"], title="confusion", xlabel="predicted", ylabel="true",
        value_format="{:.0f}", label_chars=12,
    )  # fmt: skip
    ax = fig.axes[0]
    assert ax.images[0].get_clim() == (1.0, 8.0)  # the data's range
    assert [t for t, _ in _texts(fig)] == ["8", "1", "3", "4"]
    assert [t for t, colour in _texts(fig) if colour == "#ffffff"] == ["8"]  # above half the largest count
    assert [t.get_text() for t in ax.get_xticklabels()] == ["short", "a-rather-lo\u2026"]  # 12 characters
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert len(fig.axes) == 2  # the image and its colour bar


def test_heatmap_without_values_or_labels_for_many_classes():
    n = LABELLED_MAX + 10
    fig = matrix_heatmap(np.eye(n), [f"class-{i}" for i in range(n)], title="big", annotate_max=15)
    ax = fig.axes[0]
    assert len(ax.texts) == 0
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert len(ticks) < 15 and not any(t.startswith("class") for t in ticks)
    small = matrix_heatmap(np.eye(16), [str(i) for i in range(16)], title="s", annotate_max=15)
    assert len(small.axes[0].texts) == 0
    assert len(matrix_heatmap(np.eye(15), [str(i) for i in range(15)], title="s").axes[0].texts) == 15 * 15


@pytest.mark.filterwarnings("ignore:Attempting to set identical")  # matplotlib, on the 0 x 0 image
def test_heatmap_of_zeros_and_of_no_classes():
    fig = matrix_heatmap(np.zeros((2, 2)), ["a", "b"], title="none yet", value_format="{:.0f}")
    assert {colour for _, colour in _texts(fig)} == {"#000000"}
    assert png_bytes(matrix_heatmap(np.zeros((0, 0)), [], title="empty")).startswith(PNG_MAGIC)


def test_heatmaps_drawn_in_threads_are_identical():
    labels = [f"c{i}" for i in range(8)]
    matrix = np.random.default_rng(0).random((8, 8))

    def draw(_: int) -> bytes:
        return png_bytes(matrix_heatmap(matrix, labels, title="t", vmin=0.0, vmax=1.0))

    first = draw(0)
    with ThreadPoolExecutor(4) as pool:
        pngs = list(pool.map(draw, range(8)))
    assert all(p == first for p in pngs)
