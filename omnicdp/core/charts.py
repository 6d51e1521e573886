"""Charts logged with models (MLflow artifacts) and put in reports, drawn off-screen as PNG.
matplotlib is imported only when a chart is drawn."""

from __future__ import annotations

import io
from typing import Any


def pyplot() -> Any:  # noqa: ANN401 (matplotlib.pyplot)
    """matplotlib's pyplot on the off-screen Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(figure: Any) -> bytes:  # noqa: ANN401 (a matplotlib figure)
    """The figure as PNG bytes; the figure is closed (pyplot keeps every open one)."""
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot().close(figure)
    return buffer.getvalue()
