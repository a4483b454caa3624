"""The pipeline's DAG files, installed with the package as ``zoom_qos.example_dags``.

This folder is this repository's DAG folder; the wheel maps it to ``zoom_qos/example_dags/`` (see
``[tool.setuptools]`` in pyproject.toml) so a user copies the files from the installed package::

    python -c "import zoom_qos.example_dags as d; print(d.__path__[0])"

Nothing else lives here: the scheduler's safe-mode scan skips this file (no DAG is defined in it).
"""
