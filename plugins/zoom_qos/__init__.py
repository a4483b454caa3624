"""Zoom Video SDK QoS into a warehouse, on Airflow.

The folders follow the data path: ``zoom`` (the Zoom client, no Airflow) → ``extract`` (which days,
staging) → ``transform`` (Zoom's strings into rows) → ``warehouse`` (tables, loads, views, checks)
→ ``report``. The modules at this level are the Airflow-facing layer: ``hooks`` (a connection →
the client), ``operators`` (a batch of sessions → staging), ``tasks`` (what the DAG's tasks call),
``assets`` and ``provider``; ``config`` and ``errors`` are shared by all. docs/architecture.md
("Module layout") says what each module holds.
"""
