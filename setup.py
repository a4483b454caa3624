"""The one thing pyproject.toml cannot say: the package list is found (every package under
plugins/), plus the DAGs of dags/ shipped as ``zoom_qos.example_dags``. Everything else is in
pyproject.toml."""

from setuptools import find_packages, setup


def packages() -> list[str]:
    """Every package of the tree under plugins/, and the shipped DAGs."""
    return [*find_packages("plugins", include=["zoom_qos", "zoom_qos.*"]), "zoom_qos.example_dags"]


if __name__ == "__main__":
    setup(packages=packages())
