"""Zoom Video SDK QoS into a warehouse, on Airflow.

The data path, one module per step:
``auth``/``encoding``/``pagination``/``retry``/``ratelimit`` → ``hooks`` (talks to Zoom)
→ ``operators`` (pages QoS per session batch) → ``staging`` (JSON lines in object storage)
→ ``parsing``/``transform`` (Zoom strings → numbers) → ``load`` (idempotent upserts)
→ ``schema`` (the warehouse contract). ``windows`` decides which days a run covers and
``tasks`` holds the callables the DAG file wires together.
"""
