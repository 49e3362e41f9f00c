"""Self-contained HTML for people to look at: evaluation visuals and the local run report.

Everything is inline (CSS, SVG drawn by matplotlib): no network at view time, so the files
render the same in the Vertex AI console, the KFP UI and a browser on a laptop.
"""
