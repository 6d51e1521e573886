"""Charts of a trained model, as PNG: each comparison level's match weight, and its m and u
probabilities (the two charts Splink draws, without Splink's chart extra)."""

from __future__ import annotations

from omnicdp.core.charts import png as _png
from omnicdp.core.charts import pyplot
from omnicdp.services.identity.linkage.model import LinkageModel


def _rows(model: LinkageModel) -> list[tuple[str, dict]]:
    rows = []
    for comparison in model.splink_settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if not level.get("is_null_level"):
                rows.append((f"{comparison['output_column_name']}: "
                             f"{level['label_for_charts']}", level))
    return rows


def match_weights_chart(model: LinkageModel) -> bytes:
    plt = pyplot()
    weights = {f"{name}: {label}": w for name, levels in model.level_weights().items()
               for label, w in levels if label != "null"}
    labels = ["prior", *weights]
    values = [model.prior_weight, *weights.values()]
    figure, axes = plt.subplots(figsize=(9, 0.3 * len(labels) + 1))
    axes.barh(labels, values, color=["#888" if v == values[0] else
                                     ("#3b7dd8" if v >= 0 else "#d8613b") for v in values])
    axes.invert_yaxis()
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel("match weight (log2 Bayes factor)")
    axes.set_title("Match weights of each comparison level")
    return _png(figure)


def m_u_chart(model: LinkageModel) -> bytes:
    plt = pyplot()
    rows = _rows(model)
    labels = [label for label, _ in rows]
    figure, (m_axes, u_axes) = plt.subplots(1, 2, sharey=True,
                                            figsize=(11, 0.3 * len(labels) + 1))
    m_axes.barh(labels, [level["m_probability"] for _, level in rows], color="#3b7dd8")
    u_axes.barh(labels, [level["u_probability"] for _, level in rows], color="#d8613b")
    u_axes.set_xscale("log")
    m_axes.invert_yaxis()
    m_axes.set_title("m: share of matching pairs")
    u_axes.set_title("u: share of non-matching pairs (log)")
    return _png(figure)
