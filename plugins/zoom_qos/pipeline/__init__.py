"""The pipeline's steps, Airflow-free: the listing of a window, the extraction of a batch (one
``BatchExtractor`` for the daily run and the live poll), staging, the load, the run record and the
live poll. The Airflow layer (``tasks``, ``operators``) calls these with what Airflow knows."""
