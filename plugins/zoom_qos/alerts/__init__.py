"""Alerts: the notifier (``notify``), the daily quality alerts of a loaded window (``daily``) and
the live alerts of calls in progress (``live``)."""
