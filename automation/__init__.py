"""Automation: durable user-defined workflows, triggers and actions, sequences, follow-ups, escalations and scheduled reports (issue 19)."""
