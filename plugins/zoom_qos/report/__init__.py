"""The static HTML QoS report read from the warehouse's views (``page``: data, charts and page)."""

from zoom_qos.report.page import DEFAULT_DAYS, REPORT_DIR_ENV, build_report, render_configured_report

__all__ = ["DEFAULT_DAYS", "REPORT_DIR_ENV", "build_report", "render_configured_report"]
