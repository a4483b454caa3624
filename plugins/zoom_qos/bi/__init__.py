"""The warehouse in BI tools: the call-quality dashboard for Apache Superset, shipped as files.

The dashboard's charts, layout and filters are text in ``superset_assets/`` (Superset's import
format); :mod:`zoom_qos.bi.superset` turns them into an import ZIP for one warehouse. Its datasets
are our views, taken from :data:`zoom_qos.warehouse.views.VIEWS` (names and column descriptions
written once), so a chart only ever reads what the warehouse contract promises.
"""
