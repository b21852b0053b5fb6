"""A readable name for one record of each entity, as SQL over the alias `t` (pure).

Used wherever a person sees a reference: the console's labels endpoint and report groups
(a report grouped by owner shows names, never ids).
"""

from __future__ import annotations

LABELS: dict[str, str] = {
    "accounts": "t.name",
    "contacts": "coalesce(nullif(trim(concat_ws(' ', t.first_name, t.last_name)), ''),"
    " t.company_name, t.email, 'contact')",
    "leads": "coalesce(nullif(trim(concat_ws(' ', t.first_name, t.last_name)), ''),"
    " t.company, t.email, 'lead')",
    "opportunities": "t.name",
    "activities": "t.subject",
    "work_orders": "t.title",
    "users": "t.name",
    "territories": "t.name",
    "pipelines": "t.name",
    "pipeline_stages": "t.name",
    "lead_assignment_rules": "t.name",
}


def label_sql(entity: str, alias: str) -> str:
    """The label expression of `entity` over another alias."""
    return LABELS[entity].replace("t.", f"{alias}.")
