"""The warehouse: tables, migrations, loads, BI views and data-quality checks."""
