"""Zoom's unit strings and objects into warehouse rows: pure functions."""
