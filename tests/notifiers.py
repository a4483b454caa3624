"""A notifier for tests that run Airflow in another process: each notification is one JSON line
in a file, so the test can read what would have been sent."""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseNotifier


class FileNotifier(BaseNotifier):
    """Appends ``{"subject", "text"}`` to ``path`` for every notification."""

    template_fields = ("subject", "text")

    def __init__(self, path: str, subject: str | None = None, text: str | None = None) -> None:
        super().__init__()
        self.path, self.subject, self.text = path, subject, text

    def notify(self, context: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as sink:
            sink.write(json.dumps({"subject": self.subject, "text": self.text}) + "\n")
