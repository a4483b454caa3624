"""The warehouse: tables, migrations, loads, BI views and data-quality checks.

Its face is :class:`Warehouse` (``store``), :class:`SessionInput` (``plan``) and
:class:`LoadSummary` (``loader``); callers import them from those modules.
"""
