"""What every layer shares and that imports nothing of the package: the error roots, the QoS
statuses, the typed contracts between tasks (with the DAG, task and XCom names) and the package's
settings."""
