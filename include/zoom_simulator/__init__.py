"""Local Zoom Video SDK API simulator (sessions, QoS, users, daily report) for tests and local runs.

Public interface: Simulator, SimulatorConfig, Faults, the Dataset it serves, and
make_self_signed_cert (a certificate for serving over TLS).

The server takes Zoom's published limits and error codes from ``zoom_qos.zoom.published``
(``plugins/`` of this repository, on the path wherever the project runs).
"""

from .config import ENDPOINT_NAMES, Faults, SimulatorConfig
from .dataset import TABLE_COLUMNS, Dataset
from .server import Simulator, decode_session_segment
from .tls import make_self_signed_cert

__all__ = ["ENDPOINT_NAMES", "TABLE_COLUMNS", "Dataset", "Faults", "Simulator", "SimulatorConfig",
           "decode_session_segment", "make_self_signed_cert"]
