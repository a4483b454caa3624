"""``zoom-qos``: the package's command line (console script), Airflow-free where it can be.

One module per command group; each adds its subcommands to the parser and returns an exit code.
Errors the user can act on are printed as one line naming what failed and what to do, never a
traceback; secrets never appear (connection URLs are printed with their password masked).
"""
