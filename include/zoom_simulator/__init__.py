"""Local Zoom Video SDK API simulator (QoS endpoints) for tests and local pipeline runs.

Public interface: Simulator, SimulatorConfig, Faults, and the Dataset it serves.
"""

from .config import Faults, SimulatorConfig
from .dataset import TABLE_COLUMNS, Dataset
from .server import Simulator, decode_session_segment

__all__ = ["TABLE_COLUMNS", "Dataset", "Faults", "Simulator", "SimulatorConfig", "decode_session_segment"]
