"""Provider metadata, so Airflow lists the ``zoom_videosdk`` connection type with its labels.

Airflow discovers providers through the ``apache_airflow_provider`` entry point of installed
packages; ``pip install`` of this project (see README, "Install into your Airflow")
registers this function, and the UI's connection form then shows "Video SDK API key" and
"Video SDK API secret" instead of login and password, and the extra ``webhook_secret_token`` (the
webhook receiver's, docs/webhooks.md) as a password field.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

#: The distribution's name on PyPI (pyproject.toml's ``[project] name``).
DISTRIBUTION = "zoom-videosdk-qos"
#: The version reported when the package runs from a source tree that was never installed
#: (``PYTHONPATH=plugins``): a valid version that sorts before every release, not a made-up one.
UNKNOWN_VERSION = "0+unknown"


def package_version() -> str:
    """The installed distribution's version (its metadata, so it cannot drift from pyproject.toml)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": DISTRIBUTION,
        "name": "Zoom Video SDK QoS",
        "description": "Zoom Video SDK call-quality (QoS) data into a warehouse.",
        "versions": [package_version()],
        "connection-types": [
            {
                "hook-class-name": "zoom_qos.hooks.ZoomVideoSdkHook",
                "connection-type": "zoom_videosdk",
                # The label of the type in the UI's connection-type list (else the raw type id).
                "hook-name": "Zoom Video SDK",
                # A secret, like the API secret: a password field in the UI's form (the API and the
                # logs also hide extras whose name says secret or token, this one included).
                "conn-fields": {
                    "webhook_secret_token": {
                        "label": "Webhook secret token",
                        "schema": {"type": ["string", "null"], "format": "password"},
                        "description": "The Video SDK app's secret token (Marketplace → the app → "
                        "Features), for zoom-qos webhooks serve; not the API secret.",
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "API base URL (default https://api.zoom.us/v2)",
                        "login": "Video SDK API key",
                        "password": "Video SDK API secret",
                    },
                    "placeholders": {
                        "host": "https://api.zoom.us/v2",
                        "extra": '{"heavy_requests_per_second": 40, "read_user_grades": false}',
                    },
                },
            },
        ],
    }
