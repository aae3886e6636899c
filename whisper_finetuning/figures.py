"""Figures for reports: matplotlib drawing without a display (its file-only Agg backend, as on a server or in CI),
written as PNG files atomically."""

import io
from pathlib import Path

from .files import write_bytes_atomic


def pyplot():
    """matplotlib.pyplot on the Agg backend; a clear error when matplotlib is not installed."""
    try:
        import matplotlib
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("plots need matplotlib: pip install -e '.[demo]' (or pip install matplotlib)") \
            from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(figure, dpi: int = 120, **savefig_options) -> bytes:
    """The figure as PNG bytes; the figure is closed (matplotlib keeps open figures in memory)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, **savefig_options)
    pyplot().close(figure)
    return buffer.getvalue()


def save_png(figure, path: str | Path, dpi: int = 120, **savefig_options) -> Path:
    """Write the figure as a PNG file atomically, and close it."""
    write_bytes_atomic(path, png_bytes(figure, dpi, **savefig_options))
    return Path(path)
