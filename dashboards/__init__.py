"""Grafana dashboards, alert rules and provisioning files as code: one `*_dashboard.py` per
dashboard, shared panel helpers (panels.py) and InfluxQL builders (queries.py), lints
(lint.py), the build (build.py) and the upload to Grafana (push.py)."""
