"""Alerts: threshold and rate-of-change rules, the alert life cycle, the gateway stage that
raises them inside the ingest transaction, and their HTTP API."""
