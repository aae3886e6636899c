"""The bar chart of a balancing report: rows per group before and after, side by side, with the counts written on
the bars (see `data.balancing`)."""

from ..figures import png_bytes, pyplot

MAX_BARS = 40  # more groups (speakers) than this: the largest, and the rest summed in one bar


def chart_groups(before: dict[str, int], after: dict[str, int]) -> list[tuple[str, int, int]]:
    """(label, before, after) per bar, in the report's order; past MAX_BARS groups the smaller ones share a bar."""
    if len(before) <= MAX_BARS:
        return [(group, count, after[group]) for group, count in before.items()]
    largest = set(sorted(before, key=lambda group: (-before[group], group))[:MAX_BARS - 1])
    rest = [group for group in before if group not in largest]
    return [(group, before[group], after[group]) for group in before if group in largest] + \
        [(f"{len(rest)} other groups", sum(before[g] for g in rest), sum(after[g] for g in rest))]


def balance_chart_png(report, title: str) -> bytes:
    """A PNG of horizontal bars: per group, the rows before (grey) and after (blue) balancing."""
    import numpy as np

    plt = pyplot()

    bars = chart_groups(report.before, report.after)
    labels = [label if len(label) <= 40 else label[:37] + "..." for label, _, _ in bars]
    positions = np.arange(len(bars))
    height = 0.4
    figure, axes = plt.subplots(figsize=(10, 2 + 0.45 * len(bars)), layout="constrained")
    before = axes.barh(positions - height / 2, [b for _, b, _ in bars], height,
                       label=f"before ({report.total_before} rows)", color="#9e9e9e")
    after = axes.barh(positions + height / 2, [a for _, _, a in bars], height,
                      label=f"after ({report.total_after} rows)", color="#1f77b4")
    axes.bar_label(before, padding=3, fontsize=8)
    axes.bar_label(after, padding=3, fontsize=8)
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()  # the first group on top
    axes.set_xlabel("rows")
    axes.set_ylabel(report.column or "all rows")
    axes.margins(x=0.12)  # room for the count labels
    figure.legend(handles=[before, after], loc="outside lower center", ncols=2)
    axes.set_title(title, fontsize=10)
    return png_bytes(figure, dpi=110)
