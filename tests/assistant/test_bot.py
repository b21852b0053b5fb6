"""The customer bot on the real web chat (engage's widget socket): answers from the public
knowledge base with a link, qualifies a visitor and makes the lead, offers the rep's free
times and books one, hands over to a person (asked, low confidence, negative sentiment)
with the transcript, keeps to its per-visitor limit, and its containment is counted."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import psycopg
import pytest
from psycopg.rows import dict_row

from assistant.bot_service import PER_VISITOR_PER_MIN
from engage.conversations import FIRST_RESPONSE_SLA_S
from identity import auth
from kernel.settings import Settings
from tests.appserver import serve_app
from tests.console.conftest import make_user
from tests.world import Api, People

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def url(test_settings: Settings) -> Iterator[str]:
    with serve_app(test_settings, ("crm.routes", "engage.routes", "assistant.routes")) as u:
        yield u


@pytest.fixture(scope="module")
def rep(test_settings: Settings) -> dict[str, Any]:
    """The rep the bot books and gives its leads to: of no territory, so that what the bot
    makes is visible to no other test's rep (some count what rep1 sees)."""
    return make_user(test_settings.dsn, "rep")


@pytest.fixture(scope="module")
def bot_on(url: str, people: People, rep: dict[str, Any]) -> Iterator[dict[str, Any]]:
    admin = people.api(url, "admin")
    arts = {}
    for key, title, body, audience in (
        (
            "reset",
            "Restarting the AquaFlow booster controller",
            "Switch off the mains isolator, wait 30 seconds, then hold the RESET button while "
            "switching the booster controller back on.",
            "public",
        ),
        (
            "discount",
            "Partner discount matrix",
            "Partners get 12 percent on pumps and 8 percent on controllers; internal only.",
            "internal",
        ),
    ):
        r = admin.post("/assistant/articles", {"title": title, "body": body, "audience": audience})
        assert r.status_code == 201, r.text
        arts[key] = r.json()
    settings = {
        "enabled": True,
        "booking_user_ids": [rep["id"]],
        "lead_owner_id": rep["id"],
        "meeting_minutes": 30,
        "window_days": 14,
    }
    assert people.api(url, "rep1").put("/assistant/bot/settings", settings).status_code == 403
    r = admin.put("/assistant/bot/settings", settings)
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is True
    yield arts
    admin.put("/assistant/bot/settings", {"enabled": False})


class Visitor:
    """One website visitor on the widget's socket."""

    def __init__(self, url: str, tz: str | None = None, key: str | None = None) -> None:
        self.url = url.replace("http", "ws") + "/engage/chat/socket"
        self.n = 0
        self.conversation_id = 0
        self.tz = tz  # what the widget sends: the browser's IANA zone
        self.returning = key  # a returning visitor's key (the widget keeps it in localStorage)
        self.page = uuid.uuid4().hex[:8]
        self.key = ""
        self.names: list[str | None] = []  # the name each reply was labelled with

    async def __aenter__(self) -> Visitor:
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(self.url)
        await self.ws.send_str(
            json.dumps({"t": "hello", "visitor": self.returning, "email": None, "tz": self.tz})
        )
        welcome = await self.ws.receive_json(timeout=10)
        assert welcome["t"] == "welcome"
        self.key = welcome["visitor"]
        self.welcome_tz = welcome["tz"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.http.close()

    async def send(self, text: str) -> None:
        self.n += 1
        # ids unique per page load, as the widget's (a repeated id is a re-sent message)
        await self.ws.send_str(
            json.dumps({"t": "msg", "id": f"{self.page}-{self.n}", "text": text})
        )

    async def say(self, text: str, until: Callable[[str], bool]) -> list[str]:
        """Send `text`; the bot's replies up to the first one `until` accepts."""
        await self.send(text)
        got: list[str] = []
        while True:
            m = await self.ws.receive_json(timeout=30)
            if m["t"] == "msg":
                assert m["from"] == "bot", m
                self.names.append(m["name"])
                got.append(m["text"])
                if until(m["text"]):
                    return got
            elif m["t"] == "error":
                raise AssertionError(m)

    async def quiet(self, text: str) -> list[str]:
        """Send `text` and a second message: the ack of the second comes only after the
        responder finished with the first (one at a time per socket); the bot's replies
        in between are returned."""
        await self.send(text)
        await self.send("(flush)")
        got: list[str] = []
        acks = 0
        while acks < 2:
            m = await self.ws.receive_json(timeout=30)
            if m["t"] == "ack":
                acks += 1
            elif m["t"] == "msg":
                got.append(m["text"])
        return got


def _row(dsn: str, query: str, *args: Any) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, args)
        row = cur.fetchone()
    assert row is not None, query
    return row


def _conversation(dsn: str, key: str) -> dict[str, Any]:
    return _row(
        dsn,
        "SELECT c.*, s.stage, s.handoff_reason, s.lead_id, s.meeting_id FROM engage_conversations c"
        " JOIN assistant_bot_sessions s ON s.conversation_id = c.id"
        " WHERE c.visitor_email = %s",
        f"visitor:{key}".lower(),
    )


def test_the_bot_answers_from_the_knowledge_base_with_a_link(
    url: str, bot_on: dict[str, Any], test_settings: Settings
) -> None:
    async def run() -> list[str]:
        async with Visitor(url) as v:
            got = await v.say("How do I restart the booster controller?", lambda t: "/help/" in t)
            c = _conversation(test_settings.dsn, v.key)
            assert c["status"] == "pending" and c["stage"] == "idle"
            return got

    got = asyncio.run(run())
    assert "RESET button" in got[-1]
    assert f"/help/articles/{bot_on['reset']['id']}" in got[-1]
    assert "Restarting the AquaFlow booster controller" in got[-1]


def test_the_bot_qualifies_makes_the_lead_offers_slots_and_books(
    url: str, bot_on: dict[str, Any], people: People, rep: dict[str, Any], test_settings: Settings
) -> None:
    email = f"jane.roe.{people.suffix}@example.com"

    async def run() -> tuple[str, list[str], list[str]]:
        async with Visitor(url) as v:
            q = await v.say("I'd like to book an appointment", lambda t: "name" in t)
            assert "name" in q[-1]
            assert "e-mail" in (await v.say("Jane Roe", lambda t: "e-mail" in t))[-1]
            again = await v.say("jane at example", lambda t: "again" in t)
            assert "does not look like an e-mail" in again[-1]
            assert "company" in (await v.say(email, lambda t: "company" in t))[-1]
            assert "installation" in (await v.say("Roe Heating", lambda t: "need" in t))[-1]
            await v.say("a new heat pump installation", lambda t: "When" in t)
            offer = await v.say("next month", lambda t: "free times" in t or "contact" in t)
            lead = _conversation(test_settings.dsn, v.key)["lead_id"]
            assert lead is not None
            booked = await v.say("2", lambda t: "booked" in t or "taken" in t)
            return v.key, offer, booked

    key, offer, booked = asyncio.run(run())
    lead = _row(test_settings.dsn, "SELECT * FROM leads WHERE email = %s", email)
    assert (lead["first_name"], lead["last_name"], lead["company"]) == (
        "Jane",
        "Roe",
        "Roe Heating",
    )
    assert lead["source"] == "website" and lead["owner_id"] == rep["id"]
    note = _row(
        test_settings.dsn,
        "SELECT body FROM activities WHERE lead_id = %s AND type = 'note'",
        lead["id"],
    )
    assert "need: a new heat pump installation" in note["body"]
    assert "timeline: next month" in note["body"]
    assert "1." in offer[-1] and "2." in offer[-1] and "3." in offer[-1]
    assert "booked" in booked[-1]
    c = _conversation(test_settings.dsn, key)
    meeting = _row(test_settings.dsn, "SELECT * FROM activities WHERE id = %s", c["meeting_id"])
    assert meeting["source"] == "assistant_bot" and meeting["owner_id"] == rep["id"]
    assert meeting["type"] == "meeting" and email in meeting["body"]
    # the second time offered is the one booked
    second = offer[-1].split("\n2. ")[1].split("\n")[0]
    zone = ZoneInfo(second.split("(")[1].rstrip(")"))
    assert meeting["start_at"] > datetime.now(UTC)
    assert meeting["start_at"].astimezone(zone).strftime("%d %b, %H:%M") in second
    assert c["handoff_reason"] is None


@pytest.mark.parametrize(
    ("opening", "reason", "why"),
    [
        ("Can I talk to a real person please", "asked", "asked for a person"),
        ("What is the partner discount matrix?", "low_confidence", "could not answer"),
        (
            "This is ridiculous, the pump is broken again and nobody came. Useless!",
            "negative",
            "sounds unhappy",
        ),
    ],
)
def test_the_bot_hands_over_with_the_transcript(
    url: str,
    bot_on: dict[str, Any],
    people: People,
    test_settings: Settings,
    opening: str,
    reason: str,
    why: str,
) -> None:
    async def run() -> tuple[str, list[str], list[str]]:
        async with Visitor(url) as v:
            await v.say("hello", lambda t: "assistant" in t)
            got = await v.say(opening, lambda t: "team" in t)
            after = await v.quiet("are you there?")
            return v.key, got, after

    key, got, after = asyncio.run(run())
    assert "passing you to a member of our team" in got[-1] or "member of our team" in got[-1]
    assert after == []  # handed over: the bot stays silent
    c = _conversation(test_settings.dsn, key)
    assert c["stage"] == "handed_over" and c["handoff_reason"] == reason
    assert c["status"] == "open" and c["assignee_user_id"] is None  # the unassigned queue
    note = _row(
        test_settings.dsn,
        "SELECT body_text FROM engage_messages WHERE conversation_id = %s AND direction = 'note'",
        c["id"],
    )["body_text"]
    assert why in note and "Transcript:" in note
    assert f"Visitor: {opening}" in note and "Visitor: hello" in note
    if reason == "low_confidence":  # an internal article is never quoted to visitors
        assert "12 percent" not in " ".join(got)
    # an agent sees it in the inbox's unassigned open conversations
    r = people.api(url, "manager").get(
        "/engage/conversations", params={"status": "open", "assignee": "none"}
    )
    assert c["id"] in [x["id"] for x in r.json()]


def test_the_bot_answers_a_visitor_only_so_often(
    url: str, bot_on: dict[str, Any], test_settings: Settings
) -> None:
    async def run() -> int:
        async with Visitor(url) as v:
            for _ in range(PER_VISITOR_PER_MIN):
                await v.say("hello", lambda t: "assistant" in t)
            return len(await v.quiet("hello"))

    assert asyncio.run(run()) == 0


def test_containment_and_intents_are_counted(
    url: str, bot_on: dict[str, Any], people: People, test_settings: Settings
) -> None:
    async def run() -> None:
        async with Visitor(url) as v:
            await v.say("How do I restart the booster controller?", lambda t: "/help/" in t)
        async with Visitor(url) as v:
            await v.say("hello", lambda t: "assistant" in t)
            await v.say("I want to speak with an agent", lambda t: "team" in t)

    before = people.api(url, "admin").get("/assistant/analytics", params={"days": 1}).json()["bot"]
    asyncio.run(run())
    a = people.api(url, "admin").get("/assistant/analytics", params={"days": 1}).json()
    bot = a["bot"]
    assert bot["conversations"] == before["conversations"] + 2
    assert bot["contained"] == before["contained"] + 1
    assert bot["handed_over"] == before["handed_over"] + 1
    assert bot["handoffs_by_reason"]["asked"] == before["handoffs_by_reason"]["asked"] + 1
    assert bot["containment_rate"] == round(bot["contained"] / bot["conversations"], 4)
    assert bot["average_turns"] >= 1
    by = {(f["intent"], f["channel"]): f for f in a["intents"]}
    assert by[("kb_answer", "web_chat")]["success_rate"] == 1.0
    assert by[("handoff", "web_chat")]["handoff_rate"] == 1.0
    # a rep sees no bot figures
    assert people.api(url, "rep1").get("/assistant/analytics").json()["bot"] is None


# --------------------------------------------------------------------------- issue 21's leftovers


def test_the_qualified_visitors_chat_is_linked_to_the_lead(
    url: str, bot_on: dict[str, Any], people: People, rep: dict[str, Any], test_settings: Settings
) -> None:
    email = f"lena.link.{people.suffix}@example.com"

    async def run() -> str:
        async with Visitor(url) as v:
            await v.say("I'd like a quote", lambda t: "name" in t)
            await v.say("Lena Link", lambda t: "e-mail" in t)
            await v.say(email, lambda t: "company" in t)
            await v.say("skip", lambda t: "need" in t)
            await v.say("a service contract for two pumps", lambda t: "When" in t)
            await v.say("skip", lambda t: "free times" in t or "contact" in t)
            return str(v.key)

    key = asyncio.run(run())
    lead = _row(test_settings.dsn, "SELECT id FROM leads WHERE email = %s", email)["id"]
    c = _conversation(test_settings.dsn, key)
    assert c["lead_id"] == lead  # the conversation's own reference, not only the note
    # the lead's owner finds the chat in the inbox, on the lead
    owner = Api(url, _token(test_settings.dsn, rep["id"]))
    detail = owner.get(f"/engage/conversations/{c['id']}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["conversation"]["lead_id"] == lead
    # the lead's timeline names the conversation
    notes = owner.get("/activities", params={"lead_id": lead}).json()["items"]
    assert any(f"Web chat conversation {c['id']}" in (n["body"] or "") for n in notes)

    async def again() -> None:  # the visitor comes back: the same conversation, still linked
        async with Visitor(url, key=key) as v:
            await v.say("hello", lambda t: "assistant" in t)

    asyncio.run(again())
    assert _conversation(test_settings.dsn, key)["id"] == c["id"]


def _token(dsn: str, user_id: int) -> str:
    async def issue() -> str:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            return (await auth.issue_token(conn, user_id, "test"))[1]

    return asyncio.run(issue())


def _slot_lines(offer: str) -> list[str]:
    return [ln.split(". ", 1)[1] for ln in offer.splitlines() if ln[:2] in ("1.", "2.", "3.")]


@pytest.mark.parametrize(
    ("sent", "zone", "whose"),
    [
        ("America/New_York", "America/New_York", "your time zone"),
        ("Mars/Olympus_Mons", "Europe/Berlin", "our team's time zone"),  # unknown: the rep's
        (None, "Europe/Berlin", "our team's time zone"),
    ],
)
def test_slots_are_offered_in_the_visitors_time_zone(
    url: str,
    bot_on: dict[str, Any],
    people: People,
    rep: dict[str, Any],
    test_settings: Settings,
    sent: str | None,
    zone: str,
    whose: str,
) -> None:
    with psycopg.connect(test_settings.dsn, autocommit=True) as conn:
        conn.execute("UPDATE users SET timezone = 'Europe/Berlin' WHERE id = %s", (rep["id"],))
    email = f"zoe.zone.{abs(hash(sent)) % 10**6}.{people.suffix}@example.com"

    async def run() -> tuple[Any, str, list[str]]:
        async with Visitor(url, tz=sent) as v:
            await v.say("Can I book a visit", lambda t: "name" in t)
            await v.say("Zoe Zone", lambda t: "e-mail" in t)
            await v.say(email, lambda t: "company" in t)
            await v.say("skip", lambda t: "need" in t)
            await v.say("a repair", lambda t: "When" in t)
            offer = (await v.say("soon", lambda t: "free times" in t))[-1]
            # the visitor picks by the time of day they read, in their zone
            local = _slot_lines(offer)[0].split(", ")[1].split(" ")[0]
            booked = await v.say(f"{local} please", lambda t: "booked" in t or "taken" in t)
            return v.welcome_tz, offer, booked

    welcome_tz, offer, booked = asyncio.run(run())
    assert welcome_tz == (sent if sent == zone else None)
    assert f"({whose}, {zone})" in offer
    lines = _slot_lines(offer)
    assert len(lines) == 3 and all(ln.endswith(f"({zone})") for ln in lines)
    assert "booked" in booked[-1] and booked[-1].endswith(
        f"({zone}). You will hear from us before then."
    )
    meeting = _row(
        test_settings.dsn,
        "SELECT a.start_at FROM activities a JOIN assistant_bot_sessions s"
        " ON s.meeting_id = a.id JOIN leads l ON l.id = s.lead_id WHERE l.email = %s",
        email,
    )
    assert meeting["start_at"].astimezone(ZoneInfo(zone)).strftime("%d %b, %H:%M") in lines[0]


def test_replies_are_labelled_with_the_bots_name_then_the_agents(
    url: str, bot_on: dict[str, Any], people: People, test_settings: Settings
) -> None:
    admin = people.api(url, "admin")
    current = admin.get("/assistant/bot/settings").json()
    keep = {k: current[k] for k in current if k != "updated_at"}
    bad = admin.put("/assistant/bot/settings", {**keep, "name": "   "})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "name"
    assert admin.put("/assistant/bot/settings", {**keep, "name": "Ava"}).status_code == 200
    manager = people.api(url, "manager")
    agent_name = _row(
        test_settings.dsn, "SELECT name FROM users WHERE id = %s", people.users["manager"]
    )["name"]
    try:

        async def run() -> tuple[list[str | None], dict[str, Any]]:
            async with Visitor(url) as v:
                await v.say("hello", lambda t: "assistant" in t)
                await v.say("I want to speak with an agent", lambda t: "team" in t)
                conv = _conversation(test_settings.dsn, v.key)["id"]
                r = manager.post(
                    f"/engage/conversations/{conv}/replies",
                    {"body": "Hi, this is a person now.", "idempotency_key": f"hi-{conv}"},
                )
                assert r.status_code == 202, r.text
                while True:
                    m = await v.ws.receive_json(timeout=30)
                    if m["t"] == "msg":
                        return v.names, m

        names, agent = asyncio.run(run())
    finally:
        admin.put("/assistant/bot/settings", keep)
    assert names and set(names) == {"Ava"}
    assert (agent["from"], agent["name"], agent["text"]) == (
        "agent",
        agent_name,
        "Hi, this is a person now.",
    )


def test_the_sla_of_a_handed_over_chat_counts_from_the_handover(
    url: str, bot_on: dict[str, Any], test_settings: Settings
) -> None:
    async def run() -> tuple[str, dict[str, Any]]:
        async with Visitor(url) as v:
            await v.say("How do I restart the booster controller?", lambda t: "/help/" in t)
            answered = _conversation(test_settings.dsn, v.key)
            await v.say("Can I talk to a real person please", lambda t: "team" in t)
            return str(v.key), answered

    key, answered = asyncio.run(run())
    # while the bot answered, no reply was owed by an agent
    assert answered["first_response_due_at"] is None
    c = _row(
        test_settings.dsn,
        "SELECT c.first_response_due_at, s.handed_over_at, c.created_at"
        " FROM engage_conversations c JOIN assistant_bot_sessions s ON s.conversation_id = c.id"
        " WHERE c.visitor_email = %s",
        f"visitor:{key}".lower(),
    )
    assert c["first_response_due_at"] == c["handed_over_at"] + timedelta(
        seconds=FIRST_RESPONSE_SLA_S
    )
    assert c["handed_over_at"] > c["created_at"]
