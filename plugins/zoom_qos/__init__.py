"""Zoom Video SDK QoS into a warehouse, on Airflow.

The folders are layers, and each imports only those below it (``make lint`` checks it):
``core`` (errors, statuses, task contracts, settings; imports nothing of ours) ← ``zoom`` (the
Zoom client, no Airflow) ← ``transform`` (Zoom's strings into rows) ← ``warehouse`` (tables,
loads, views, checks) ← ``report`` ← ``alerts`` ← ``pipeline`` (listing, extraction, load, run
record, live poll) ← the Airflow layer, the modules at this level: ``tasks`` (what the DAGs'
tasks call), ``operators``, ``hooks`` (a connection → the client), ``lineage``, ``assets`` and
``provider``. docs/architecture.md ("Layers", "Module layout") says what each module holds.
"""
