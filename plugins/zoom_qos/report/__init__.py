"""The static HTML QoS report read from the warehouse's views.

``data`` reads the views into a ``ReportData``, ``charts`` draws the SVG charts, ``page`` renders
the HTML page from ``templates/``, ``build`` writes the file.
"""

from zoom_qos.report.build import REPORT_DIR_ENV, build_report, render_configured_report
from zoom_qos.report.data import DEFAULT_DAYS, ReportData, load_report_data
from zoom_qos.report.page import render_html

__all__ = [
    "DEFAULT_DAYS",
    "REPORT_DIR_ENV",
    "ReportData",
    "build_report",
    "load_report_data",
    "render_configured_report",
    "render_html",
]
