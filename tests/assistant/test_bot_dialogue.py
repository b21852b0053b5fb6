"""The customer bot's dialogue as pure functions: sentiment, what a message starts, the
qualification questions, picking an offered slot, the handover note."""

from __future__ import annotations

from assistant import bot

OFFERED = ("2026-12-08T09:00:00+00:00", "2026-12-08T10:30:00+00:00", "2026-12-09T14:00:00+00:00")


def test_sentiment_reads_complaints_negations_and_intensifiers() -> None:
    assert bot.sentiment("This is useless and I am really angry") <= bot.NEGATIVE_AT
    assert bot.sentiment("still not working, nobody came") <= bot.NEGATIVE_AT
    assert bot.sentiment("thanks, that was very helpful") > 0
    assert bot.sentiment("not bad at all") > bot.NEGATIVE_AT
    assert bot.sentiment("how do I reset the controller") == 0


def test_what_a_message_starts() -> None:
    s = bot.State()
    assert bot.start("can I speak with someone", s, None).reason == "asked"
    assert bot.start("This is a scam, worst service ever!!!", s, None).reason == "negative"
    assert bot.start("hello", s, None).intent == "greeting"
    assert bot.start("thanks!", s, None).intent == "thanks"
    assert bot.start("how do I reset the controller?", s, None).do == "search"
    q = bot.start("I would like a quote for a new installation", s, None)
    assert q.intent == "qualify" and q.state.stage == "qualify" and "name" in q.replies[0]
    assert bot.start("anything", bot.State(stage="handed_over"), None).intent == "silent"


def test_qualification_asks_in_order_checks_the_email_and_skips_what_is_known() -> None:
    s = bot.start("book an appointment", bot.State(), "known@example.com").state
    s = bot.start("Ada Lovelace", s, "known@example.com").state
    # the e-mail the widget gave is not asked again
    assert s.answers["_ask"] == "company"
    step = bot.start("skip", s, "known@example.com")
    assert step.state.answers["company"] == "" and step.state.answers["_ask"] == "need"
    step = bot.start("a repair of my pump", step.state, "known@example.com")
    step = bot.start("asap", step.state, "known@example.com")
    assert step.do == "lead" and "_ask" not in step.state.answers
    s = bot.start("book a visit", bot.State(), None).state
    s = bot.start("Ada", s, None).state
    bad = bot.start("ada at home", s, None)
    assert bad.state == s and "again" in bad.replies[0]
    good = bot.start("Mail me: Ada@Example.org please", s, None)
    assert good.state.answers["email"] == "ada@example.org"


def test_an_offered_slot_is_picked_by_number_ordinal_or_time() -> None:
    assert bot.choose("2", OFFERED) == OFFERED[1]
    assert bot.choose("option 3", OFFERED) == OFFERED[2]
    assert bot.choose("the first one please", OFFERED) == OFFERED[0]
    assert bot.choose("10:30 works", OFFERED) == OFFERED[1]
    assert bot.choose("7", OFFERED) is None
    assert bot.choose("whenever", OFFERED) is None
    s = bot.State(stage="offer", offered=OFFERED)
    assert bot.start("no thanks", s, None).state.stage == "idle"
    assert bot.start("2", s, None).pick == OFFERED[1]


def test_a_weak_article_is_a_handover_and_a_strong_one_is_cited() -> None:
    art = bot.Article(7, "Resetting the controller", "Hold RESET.", 0.8, "/help/articles/7")
    weak = bot.Article(7, "Resetting the controller", "Hold RESET.", 0.2, "/help/articles/7")
    ok = bot.after_search("q", bot.State(), art, 0.45)
    assert ok.intent == "kb_answer" and "/help/articles/7" in ok.replies[0]
    low = bot.after_search("q", bot.State(), weak, 0.45)
    assert low.do == "handoff" and low.reason == "low_confidence"
    assert bot.after_search("q", bot.State(), None, 0.45).reason == "low_confidence"


def test_the_handover_note_says_why_and_carries_the_transcript() -> None:
    s = bot.State(answers={"name": "Ada", "_ask": "email"}, lead_id=5, meeting_id=9)
    note = bot.summary(s, "negative", [("Visitor", "hi"), ("Bot", "Hello!")])
    assert "sounds unhappy" in note and "name: Ada" in note and "_ask" not in note
    # the console's record pages (#/leads/5 opened the list of every lead)
    assert "Lead: /console/#/r/leads/5" in note
    assert "Meeting booked: /console/#/r/activities/9" in note
    assert note.endswith("Visitor: hi\nBot: Hello!")
