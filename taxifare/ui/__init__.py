"""The local web console (`taxifare ui`): runs, live DAGs and logs, comparisons, charts across runs and
the model registry, read-only over the run records and the registry, with no state of its own.

app.py (Starlette routes and handlers; Jinja2 templates in templates/, the page script and style in
static/), guard.py (what every request passes and every answer carries), store.py (reading the
records and the registry), files.py and artifacts.py (a run's files, never outside its folder),
tables.py, run_page.py, compare.py, trends.py, models.py (what each page shows), charts.py
(server-side SVG by matplotlib), server.py (the socket and uvicorn).
"""

from taxifare.ui.app import create_app

__all__ = ["create_app"]
