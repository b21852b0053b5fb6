"""Saved reports, a dashboard and knowledge-base articles for the demo world.

Without them a new user of `make demo` opens Reports, Dashboards and the Knowledge base on
empty pages. They are written through the services the API uses (`crm.report_routes`'
save_report and save_dashboard, which compile and plan each definition first;
`assistant.kb.create`), owned by the demo manager (`manager@<tenant>.demo...`, made by
`fieldmesh.demo_world.seed_logins`), so the manager may change them and an admin too.
Reports and the dashboard are shared: every role opens them, and running a report always
applies the reader's own record-level access. The articles are of no territory, so every
user reads them; the two a customer may ask about are `public`, so the customer bot may
quote them too.

Idempotent per tenant: an item is created only when its owner (the tenant's demo manager)
has none of that name, so a second `fieldmesh demo` creates nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
from psycopg import AsyncConnection

from assistant import kb
from assistant.kb_routes import ArticleIn
from crm.report_routes import DashboardIn, DashboardTile, ReportIn, save_dashboard, save_report
from crm.reports import ReportDefinition
from identity.auth import load_principal

DASHBOARD = "Sales overview"

# (name, description, definition, dashboard tile width or 0 when not on the dashboard)
REPORTS: tuple[tuple[str, str, dict[str, Any], int], ...] = (
    (
        "Won revenue by month and owner",
        "Deals won each month, per owner: the revenue booked and how many deals.",
        {
            "entity": "opportunities",
            "filter": {"field": "status", "op": "eq", "value": "won"},
            "group_by": [{"field": "closed_at", "bucket": "month"}, {"field": "owner_id"}],
            "measures": [{"agg": "sum", "field": "amount"}, {"agg": "count"}],
            "chart": "bar",
        },
        2,
    ),
    (
        "Open pipeline by stage",
        "Open deals per pipeline stage: how many and their total amount.",
        {
            "entity": "opportunities",
            "filter": {"field": "status", "op": "eq", "value": "open"},
            "group_by": [{"field": "stage_id"}],
            "measures": [{"agg": "count"}, {"agg": "sum", "field": "amount"}],
            "chart": "bar",
        },
        1,
    ),
    (
        "Completed activities by type per week",
        "Calls, e-mails, meetings and tasks done each week.",
        {
            "entity": "activities",
            "filter": {"field": "status", "op": "eq", "value": "done"},
            "group_by": [{"field": "completed_at", "bucket": "week"}, {"field": "type"}],
            "measures": [{"agg": "count"}],
            "chart": "line",
            "limit": 500,
        },
        1,
    ),
    (
        "Work orders by status and priority",
        "Every work order counted by where it stands and how urgent it is.",
        {
            "entity": "work_orders",
            "group_by": [{"field": "status"}, {"field": "priority"}],
            "measures": [{"agg": "count"}],
            "chart": "table",
        },
        2,
    ),
)

# (kind, title, tags, audience, body: paragraphs separated by blank lines)
ARTICLES: tuple[tuple[str, str, list[str], str, str], ...] = (
    (
        "howto",
        "Replacing the mechanical seal of a centrifugal pump",
        ["pump", "seal", "leak", "repair"],
        "internal",
        "A pump that drips or leaks under the motor, or leaves a wet patch or white crust "
        "around the shaft, needs a new mechanical seal. Running it on a worn seal lets water "
        "reach the motor bearings, so plan the repair for the same visit when the part is in "
        "the van.\n\n"
        "Isolate the pump at the mains switch and lock it off, close the suction and delivery "
        "valves, and drain the housing through the drain plug. Remove the motor bolts and lift "
        "the motor and impeller out of the housing. Hold the shaft, undo the impeller nut and "
        "pull the impeller off; the rotating half of the old seal comes with it.\n\n"
        "Press the old stationary seat out of the backplate, clean the seat bore and the shaft, "
        "and check the shaft for scoring: a scored shaft eats a new seal within weeks. Wet the "
        "new seat's rubber with clean water or soapy water (never oil or grease, which swell "
        "the rubber) and press it in evenly with the supplied sleeve. Slide the rotating half "
        "onto the shaft, refit the impeller and tighten the nut to the manufacturer's torque.\n\n"
        "Reassemble with a new housing gasket, open the valves, vent the housing and run the "
        "pump for ten minutes. A new seal may weep a few drops while it beds in; a steady drip "
        "after that means the seal was damaged when fitted. Record the part under parts used "
        "on the work order before you close the visit.",
    ),
    (
        "howto",
        "What to do when a pressure alert fires",
        ["alert", "pressure", "pump", "work order"],
        "internal",
        "A pressure alert means a device's outlet pressure has left its normal band: too low "
        "usually points to a leak, a worn impeller, a blocked suction strainer or air in the "
        "system; too high to a closed or blocked valve downstream. A warning or critical alert "
        "opens a work order for the customer at once: the contract and the alert's severity "
        "decide its priority and due time, and a critical one halves the response time.\n\n"
        "Open the alert from your phone's day or the Alerts page and acknowledge it, so the "
        "team knows someone is on it. Look at the pressure chart for the last hours: a sudden "
        "drop is a burst or a tripped pump, a slow slide is wear or a leak, and a spike that "
        "settles is usually a valve closed and opened again.\n\n"
        "Call the site contact before you drive: ask whether anyone closed a valve, whether "
        "water is visible under the pump, and whether the pump is running at all. If the site "
        "has fixed it (a valve left closed after cleaning, for example), note what they said on "
        "the work order and close it; the alert clears when the pressure is back in band.\n\n"
        "On site, check the suction strainer, vent the pump, look for leaks at the seal and the "
        "joints, and compare the gauge with the sensor's reading. If the sensor itself is "
        "wrong, say so in the visit notes so the device can be recalibrated; if the repair "
        "needs a part you do not carry or more help, escalate the alert to your manager.",
    ),
    (
        "howto",
        "Logging a visit by voice",
        ["voice", "visit", "assistant", "phone"],
        "internal",
        "You can log a visit without typing while you drive or have your hands full. On your "
        "phone's day, hold the big Hold to talk button (or Space on a keyboard) and speak; let "
        "go when you are done. What the assistant heard and its answer are shown, and read "
        "aloud unless you turned speech off.\n\n"
        'Say "I have arrived" or "check in" when you reach the site: the assistant checks '
        'you in at the stop your phone shows. When the job is done, say "done" followed by '
        'what you did, for example "done, replaced the seal and tested the pressure": the '
        "words after done become a note on the stop's work order and the visit is closed. "
        '"Next stop" tells you where to go next.\n\n'
        'The assistant always asks before it changes anything: answer "yes" or "no" by '
        "voice or with the buttons. If it misheard, say no and try again, speaking a little "
        "slower and naming the customer if it picked the wrong one. Notes are kept word for "
        "word, so check the text on screen before you say yes.",
    ),
    (
        "faq",
        "How fast do you respond to an urgent work order?",
        ["sla", "urgent", "response time", "work order"],
        "public",
        "Every service contract sets a response time, 48 hours unless your contract says "
        "otherwise. It runs from the moment the work order is opened, and we plan the "
        "technician's visit so that it falls within it.\n\n"
        "When your equipment reports a critical fault, the response time is halved, but never "
        "to less than 4 hours. On a standard or premium contract a critical fault is handled "
        "as urgent and is planned ahead of other visits the same day; on a basic contract it "
        "is high priority. Warnings are planned as normal visits, or high priority on a "
        "premium contract.\n\n"
        "You can always call us to report a fault your equipment has not reported itself; we "
        "open a work order while you are on the phone and tell you when to expect the "
        "technician.",
    ),
    (
        "faq",
        "Why is my pump losing pressure?",
        ["pump", "pressure", "leak", "maintenance"],
        "public",
        "A pump that delivers less pressure than usual most often has a blocked suction "
        "strainer, air in the pipework, a leaking seal or a worn impeller. A valve left "
        "partly closed after cleaning or maintenance has the same effect.\n\n"
        "Check that the valves before and after the pump are fully open and look for water "
        "under the pump or at its joints. Do not open the pump housing yourself while it is "
        "connected to the mains.\n\n"
        "If your equipment is connected, we usually see the drop before you do and contact "
        "you. If the pressure does not recover, call us: a technician will check the strainer, "
        "vent the system and replace the seal or impeller if needed.",
    ),
)


@dataclass(frozen=True, slots=True)
class LibraryCounts:
    reports: int  # created by this call
    dashboards: int
    articles: int

    @property
    def created(self) -> bool:
        return bool(self.reports or self.dashboards or self.articles)


async def _seed(dsn: str, tenant: str) -> LibraryCounts:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT id FROM users WHERE lower(email) = lower(%s)",
            (f"manager@{tenant}.demo.fieldmesh.invalid",),
        )
        row = await cur.fetchone()
        if row is None:
            raise ValueError("no demo manager: seed the demo logins first")
        manager = await load_principal(conn, int(row[0]))
        assert manager is not None
        n_reports = n_dash = n_articles = 0
        async with conn.transaction():
            cur = await conn.execute(
                "SELECT name, id FROM saved_reports WHERE owner_id = %s", (manager.user_id,)
            )
            have = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
            tiles = []
            for name, description, definition, width in REPORTS:
                if name not in have:
                    body = ReportIn(
                        name=name,
                        description=description,
                        definition=msgspec.convert(definition, ReportDefinition),
                        shared=True,
                    )
                    have[name] = (await save_report(conn, manager, body)).id
                    n_reports += 1
                if width:
                    tiles.append(DashboardTile(report_id=have[name], width=width))
            cur = await conn.execute(
                "SELECT 1 FROM dashboards WHERE owner_id = %s AND name = %s",
                (manager.user_id, DASHBOARD),
            )
            if await cur.fetchone() is None:
                dash = DashboardIn(name=DASHBOARD, tiles=tiles, shared=True)
                await save_dashboard(conn, manager, dash)
                n_dash = 1
            cur = await conn.execute(
                "SELECT title FROM assistant_articles WHERE created_by = %s", (manager.user_id,)
            )
            titles = {str(r[0]) for r in await cur.fetchall()}
            for kind, title, tags, audience, text in ARTICLES:
                if title in titles:
                    continue
                values = {"kind": kind, "title": title, "body": text, "tags": tags}
                body_in = msgspec.convert({**values, "audience": audience}, ArticleIn)
                await kb.create(conn, manager, msgspec.structs.asdict(body_in))
                n_articles += 1
        return LibraryCounts(n_reports, n_dash, n_articles)


def seed_library(dsn: str, tenant: str) -> LibraryCounts:
    """Create the demo's saved reports, dashboard and articles once (committing); answers
    what this call created (all zero when they were there)."""
    return asyncio.run(_seed(dsn, tenant))
