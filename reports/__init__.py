"""Monthly impact reports: a model built from stored analysis results, rendered to HTML, PDF, CSV and JSON."""
