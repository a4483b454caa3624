"""The receiver of Zoom's event notifications: a small ASGI service (``zoom-qos webhooks serve``)."""
