"""The Zoom client: requests, auth, ids, paging, pacing, the daily budget, bodies. No Airflow here."""
