"""The introspection pages' charts, re-exported from ``boundary.charts`` (their home) for
callers written against this module."""

from .charts import candidates_chart_svg, sweep_chart_svg

__all__ = ["candidates_chart_svg", "sweep_chart_svg"]
