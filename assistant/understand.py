"""Intent recognition and slot filling for one command (SCHEMA.md of the assistant data).

Rules decide where the schema draws a line (ordered cues, most specific first); a trained
classifier (assistant.classifier) decides when no cue fires, and says out_of_scope when it
is not confident. Slots are read with patterns per intent, dates and times with
assistant.when.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from assistant import when
from assistant.text import clean, digits_for_words, words_to_number

INTENTS = (
    "search_records", "create_record", "update_record", "log_activity", "schedule_meeting",
    "report_query", "navigate", "next_stop", "check_in", "complete_visit", "acknowledge_alert",
    "create_work_order", "set_reminder", "out_of_scope",
)  # fmt: skip


@dataclass
class Understanding:
    intent: str
    slots: dict[str, Any] = field(default_factory=dict)
    confidence: float = 1.0
    by: str = "rule"


class Fallback(Protocol):
    def predict(self, text: str) -> tuple[str, float]: ...


_PRE = r"^(?:(?:can we|shall we|could we|let's|lets)\s+)?(?:(?:ok(?:ay)?|so|hey|yes|yeah|please|hi|hello|assistant|now|and|alright|right)[, ]+)*(?:(?:can|could|would|will) you |i(?:'d| would)? (?:want|need|like) (?:you )?to |let's |lets |please |i wanna )*"

ENTITY_WORDS = [
    ("work_order", r"work ?orders?|tickets?|jobs?|service requests?"),
    ("opportunity", r"opportunit(?:y|ies)|deals?|opps?"),
    ("lead", r"leads?|prospects?"),
    ("contact", r"contacts?|people|persons?"),
    ("account", r"accounts?|customers?|clients?|compan(?:y|ies)"),
    ("activity", r"activit(?:y|ies)"),
]
SCREENS = [
    ("work_orders", r"work ?orders?|tickets?|jobs?"),
    ("accounts", r"accounts?|customers?|clients?"),
    ("contacts", r"contacts?|contact list|people"),
    ("leads", r"leads?|prospects?"),
    ("pipeline", r"pipeline|opportunit(?:y|ies)|deals?(?: board)?|opps"),
    ("calendar", r"calendar|agenda|schedule"),
    ("reports", r"reports?|dashboards?|analytics"),
    ("settings", r"settings|preferences|options|profile"),
    ("alerts", r"alerts?|alarms?"),
    ("map", r"map(?: view)?"),
]
METRICS = [
    ("win_rate", r"win ?rate|close rate|conversion|hit rate|how many (?:deals )?(?:did )?we win"),
    ("open_work_orders", r"(?:open |outstanding |pending )?(?:work ?orders?|tickets?|jobs?)"),
    ("active_alerts", r"alerts?|alarms?"),
    ("new_leads", r"leads?|prospects?"),
    ("forecast", r"forecast"),
    ("pipeline_value", r"pipeline|open deals?|deals?|opportunit(?:y|ies)"),
    ("revenue", r"revenue|sales|bookings|turnover|income|made|sold|earn"),
    ("visits", r"visits?|stops?|site calls"),
]
STAGES = [
    ("closed_won", r"closed[ _-]?won|won"),
    ("closed_lost", r"closed[ _-]?lost|lost"),
    ("prospecting", r"prospecting"),
    ("qualification", r"qualification|qualifying"),
    ("proposal", r"proposal|quote sent|quoted"),
    ("negotiation", r"negotiation|negotiating|negotiate"),
]
PRIORITIES = [
    ("urgent", r"urgent|emergency|critical|asap|immediately|top priority"),
    ("high", r"high(?:[ -]priority)?|important"),
    ("normal", r"normal|medium|standard|regular"),
    ("low", r"low|no rush|whenever"),
]
PERIOD_WORDS = [
    ("today", r"today|so far today"),
    ("this_week", r"this week|week to date|the week"),
    ("last_month", r"last month|previous month"),
    ("last_quarter", r"last quarter|previous quarter"),
    ("this_month", r"this month|month to date|the month|mtd"),
    ("this_quarter", r"this quarter|the quarter|quarter to date|qtd"),
    ("this_year", r"this year|year to date|ytd|the year"),
]

_CAP_STOP = {
    "i", "the", "a", "an", "and", "on", "at", "for", "to", "with", "in", "of", "about", "re",
    "please", "today", "tomorrow", "tonight", "me", "us", "you", "him", "her", "them", "it",
    "we", "they",
}  # fmt: skip


def _any(pattern: str, t: str) -> bool:
    return re.search(pattern, t) is not None


def recognise(t: str) -> str | None:
    """The intent that a cue in the cleaned, lower-case text decides, or None."""
    s = re.sub(_PRE, "", t)
    ent = r"(?:account|contact|lead|prospect|opportunit(?:y|ies)|deal|customer|client)"
    if _any(r"^remind (?!me\b|us\b|myself\b|in\b|at\b|on\b|tomorrow\b|to\b|tonight\b|next\b)\w", s):
        return "out_of_scope"
    if _any(
        r"^(?:set (?:a |an |me a )?reminder|remind|reminder|ping me|nudge me|don't let me forget|alert me)\b",
        s,
    ) or _any(r"\bremind (?:me|us)\b|\breminder\b|\bping me\b", s):
        return "set_reminder"
    # Things the assistant never does, said with CRM words: the verb decides.
    if _any(  # noqa: SIM102 - the cue, then its exceptions
        r"^(?:delete|remove|erase|merge|dedupe|export|download|print|translate|send|forward|e-?mail (?!to\b)\w+|upload|scan|attach|photograph|take a (?:photo|picture)|log (?:me )?(?:out|off)|sign (?:me )?(?:out|off)|set (?:an? |my )?(?:alarm|timer)|(?:cancel|delete|move|reschedule|postpone|push back) (?:my |the |our |this |that )?(?:\d+\s?(?:am|pm) |next |\w+day'?s? )?(?:meeting|call|appointment|demo|visit with)|text|sms|whatsapp|message|call(?! with| about| log)|phone|ring|dial|give(?! me\b)|grant|share|approve|reject|order|buy|purchase|turn|switch (?:on|off)|start the (?:pump|machine|compressor)|stop the|restart|reboot|shut|unlock|lock|set the (?:office |room )?(?:thermostat|temperature|heating)|book (?:me )?(?:a |an )?(?:flight|hotel|train|taxi|car|ticket to|table)|play|tell me a joke|sing|what time is it)\b",
        s,
    ):
        if not _any(r"^(?:call|phone)\b.*\b(?:log|logged|note)\b|^text (?:note)", s):
            return "out_of_scope"
    if _any(
        r"\b(?:weather|forecast for (?:tomorrow|the weekend)|joke|share price|stock price|exchange rate|champions league|football|news|capital of|recipe|percent of|\d+ (?:times|plus|minus|divided by) \d+)\b",
        s,
    ) and not _any(r"\bforecast for (?:the |this |next |q\d)", s):
        return "out_of_scope"
    if _any(
        r"^(?:who|what|when|where|how) (?:is|was|are|were|'s|old|tall|far|long)\b(?: the| a)? (?:president|capital|ceo of|population|meaning|tallest|biggest|largest|distance|time in|traffic|score)\b|^what'?s the (?:capital|population|traffic|time in|score|meaning)\b|^how (?:tall|old|far|big|high|deep|heavy|many people live)\b(?!.*\b(?:pipeline|forecast|revenue|sales|deals?|win rate)\b)|\btraffic\b|\bpoem\b|\bconvert \d+\b|\bcurrency\b|\bpassword\b|\b(?:admin|administrator) (?:group|rights|role|access)\b|\bpermissions?\b|^(?:create|make|generate|issue|raise) (?:an? |the )?(?:invoice|purchase order|credit note)\b|\b(?:software|firmware) update\b|^how (?:do|can|should|would) (?:i|you|we)\b(?! get to (?:my |the )?next\b)|^recommend\b|\bsummary of the news\b",
        s,
    ):
        return "out_of_scope"
    if _any(
        r"^(?:hi|hello|hey|good (?:morning|afternoon|evening)|thanks?(?: you)?|how are you|who are you|what can you do)\b(?: there)?$|^(?:open|close|shut|start|stop|restart|reset|reboot|adjust|increase|decrease|raise|lower|turn up|turn down) (?:the |a )?(?:\w+ )?(?:valve|door|gate|pump|compressor|fan|motor|chiller|boiler|heater|machine|setpoint|temperature|pressure|breaker|lights?)\b|\bsetpoint\b",
        s,
    ) or _any(r"^how are you\b", s):
        return "out_of_scope"
    if _any(
        r"\b(?:ack(?:nowledge)?|dismiss|silence|mute|clear|confirm|mark)\b.*\b(?:alert|alarm|warning)s?\b|^(?:ack|acknowledge)\b|\back it\b|\backnowledge (?:it|that|this)\b|^(?:dismiss|clear|silence|mute) (?:it|that|this|them|all|everything)$|\b(?:saw|seen|got) (?:that|the|this) (?:alert|alarm)\b.*\b(?:clear|dismiss|ack\w*|silence|mute)\b",
        s,
    ):
        return "acknowledge_alert"
    if _any(
        r"\b(?:alert|alarm)s?\b.*\b(?:seen|acknowledged|ack(?:nowledge)?|dismiss(?:ed)?|handled)\b",
        s,
    ) and not _any(r"\bhow many\b", s):
        return "acknowledge_alert"
    if _any(  # noqa: SIM102 - the cue, then its exceptions
        r"\b(?:how many|how much|number of|count of|\bcount\b|total|what(?:'s| is| was| are| were)? (?:the |our |my )?(?:total |current )?(?:win ?rate|revenue|pipeline|forecast|sales|bookings)|win ?rate|close rate|how did we do|how are we doing|what(?:'s| is| was) (?:the |our )?(?:\w+ )?(?:value|figure|number))\b",
        s,
    ):
        if not _any(r"^(?:open|create|new|add)\b", s):
            return "report_query"
    if _any(
        r"^how (?:big|large|healthy|strong|full|much) (?:is|was|are) (?:the |our |my )?(?:total )?(?:pipeline|forecast|revenue|sales|win rate)\b",
        s,
    ):
        return "report_query"
    if _any(  # noqa: SIM102 - the cue, then its exceptions
        r"\b(?:revenue|forecast|bookings|pipeline value|pipeline worth|win rate|pipeline look|pipeline looking)\b",
        s,
    ) and not _any(r"^(?:open|go|show me the pipeline$|take)\b", s):
        if not _any(r"^(?:show|open|go to|take me to)(?: me)? (?:the )?(?:pipeline|reports?)$", s):
            return "report_query"
    if _any(
        r"\b(?:next (?:stop|visit|job|site|customer|one|appointment|location|address|call|destination|client)|where (?:to|do i go|am i going|should i go|'s my next|is my next)(?: now| next)?|what'?s (?:after|next)\b|who(?:'s| is) next|route me to the next|where (?:am i|are we) (?:headed|heading|going|off to)|after this (?:one|stop|visit|job|site)|take me to the next|directions to the next|(?:which|what) (?:customer|client|site|stop|job|visit|appointment|address|location|one) (?:is |comes |am i (?:doing|seeing|visiting) |do i (?:see|visit|go to|do|have) )?next|who is my next)",
        s,
    ) and not _any(r"\b(?:remind|schedule|book|meeting with)\b", s):
        return "next_stop"
    if _any(
        r"^(?:next|next please)$|^where\b.*\bnext$|\b(?:seeing|visiting|going to|heading to|driving to) next\b|^(?:and )?what(?:'s| is) next\b",
        s,
    ) and not _any(r"\b(?:remind|schedule|book)\b", s):
        return "next_stop"
    if _any(
        r"\b(?:check(?:ing)? (?:me )?in|clock(?:ing)? in|arrived|arriving|arrival|just got here|got here|pulled up|(?:reached|made it to|got to|pulling into|pulled into) (?:the |this |my )?(?:customer|client|site|location|plant|stop|premises|address|destination|building|factory)|just got to|walked in|i'?m here|i am here|we'?re here|we are here|on site now|i'?m on site|i am on site|(?:i'?m|i am) at (?:the |this )?(?:customer|site|location|client)|start(?:ing)? (?:the |my |this )?(?:site )?visit|start(?:ing)? (?:the |this |my )(?:job|work|service)$|^(?:i'?m|i am|we'?re|we are) (?:now )?(?:at|on site at|here at) (?!the office|home)[\w ]+ now$|begin(?:ning)? (?:the |my |this )?(?:site )?visit|here now)\b",
        s,
    ) and not _any(r"\b(?:check(?:ing)? in on|check in with)\b", s):
        return "check_in"
    if (
        _any(
            r"^(?:close|update|change|set|mark|move|push|put|reopen|reassign|assign)\b.*\b(?:work ?order|wo-?\d+|ticket|job)\b",
            s,
        )
        and not _any(r"\b(?:visit|stop|site)\b", s)
        and not _any(r"^(?:close|mark) (?:this|the|my) job\b", s)
    ):
        return "update_record"
    if (
        _any(
            r"\b(?:done|finished|complete[d]?|completed|that'?s it for (?:this|the|today)|that'?s all for (?:this|the|today)|wrap(?:ped)? (?:it |this |things )?up|wrapping (?:it |this |things )?up|all set|check(?:ing)? out|clock(?:ing)? out|close (?:out )?(?:the |this )?visit|end(?:ing)? (?:the |this )?visit|close out|finish(?:ing)? (?:the |this )?(?:visit|job|service)|mark (?:this|the) (?:stop|visit))\b",
            s,
        )
        and not _any(
            r"\b(?:how many|reminder|remind|work order for|deal|opportunity|lead|status)\b", s
        )
        and not _any(
            r"\b(?:(?!(?:job|visit|work|it|that)'s)\w+'s|wo-?\d+|work ?order (?:no\.? |number |#)?\d+)\b.*\b(?:done|complete|finished|closed)",
            s,
        )
    ):
        return "complete_visit"
    if (
        _any(
            r"^(?:create|add|new|open|raise|log|file|submit|make|put in|start|enter|register|book|schedule)\b(?: (?:me|us))?(?: (?:a|an|the))?(?: new)?(?: (?:urgent|emergency|critical|asap|high|low|normal|medium|standard)(?: priority)?)?(?: (?:a|an))? (?:work ?order|ticket|job|service (?:request|call|ticket)|repair (?:job|request)|maintenance (?:job|request))\b(?!s)",
            s,
        )
        or _any(
            r"\b(?:needs?|send|get|dispatch) (?:a |an )?(?:tech|technician|engineer|service tech|repair)\b|^(?:urgent|emergency|critical|high priority|low priority)? ?(?:work ?order|ticket|job) for\b|^(?:emergency|urgent) (?:work ?order|ticket|job)",
            s,
        )
        or _any(
            r"[,.]? (?:so |please |can you |could you )*(?:create|open|raise|log|make|file) (?:a |an )?(?:new )?(?:work ?order|ticket|job|service request)(?: for (?:it|them|that|this))?$",
            s,
        )
    ):
        return "create_work_order"
    if _any(
        r"^(?:rename|update|change|set|edit|modify|mark|move|push|qualify|disqualify|reassign|assign)\b",
        s,
    ) or _any(
        r"\b(?:is now|is won|is lost|is disqualified|is qualified|is not interested|are won|are lost|'s (?:new )?(?:email|phone|number|mobile|(?:job )?title|address) is)\b|\b(?:new (?:email|phone|number|mobile|address|title)) (?:for|of)\b|\b(?:has|got) a new (?:e-?mail(?: address)?|phone(?: number)?|number|mobile(?: number)?|address|(?:job )?title)\b|\b(?:deal|opportunity|opp)\b[^,]*,? (?:make|change|set) it\b|^(?:we )?(?:won|lost|closed) the \w",
        s,
    ):
        # An update names a record or one of the fields the CRM keeps; "set the pump speed"
        # or "change my password" are not CRM updates.
        crm = _any(
            r"\b(?:stage|amount|value|close ?date|closing date|due(?: date)?|status|priority|owner|e-?mail|phone|number|mobile|title|address|name|won|lost|qualif\w*|disqualif\w*|junk|not interested|on hold|hold|reopen|done|closed|close|finished|complete|cancel\w*|wo-?\d+|account|contact|lead|deal|opportunit\w+|work ?order|ticket|job|customer|client|assign\w*|negotiat\w*|proposal|prospecting|qualification)\b",
            s,
        )
        if crm and not _any(
            r"^(?:set up|set a meeting|set an appointment|move (?:my|the) meeting)\b|\bpassword\b",
            s,
        ):
            return "update_record"
    if _any(
        r"\b(?:deal|opportunity|opp)\b.*\bcloses? (?:on|by|in)\b|^(?:wo-?\d+|work ?order (?:no\.? |number |#)?\d+) is\b",
        s,
    ):
        return "update_record"
    if _any(
        rf"^(?:create|add|new|make|register|enter|set up|open (?:a|an|new)|start|put in|key in)\b(?: (?:a|an))?(?: new)? {ent}\b|^log (?:a |an )?new {ent}\b|\badd .+ as (?:a |an )?(?:new )?{ent}\b|^(?:add|put|save|enter) .+ (?:to|in|into) (?:my |our |the )?(?:contacts|leads|accounts|prospects|customers|clients)\b|^new {ent}\b|^(?:create|add|new|set up)\b(?: (?:a|an))?(?: new)? (?:leed|opportunity)\b",
        s,
    ) and not _any(r"\b(?:note|task|to-?do)\b", s[:25]):
        return "create_record"
    if _any(
        rf"[,.;]? (?:so |please |can you |could you |now )*(?:create|add) (?:a |an )?(?:new )?{ent}s?\b(?! (?:with|to)\b)",
        s,
    ) and not _any(r"\b(?:note|task|to-?do)\b", s):
        return "create_record"
    if _any(
        r"^(?:log|record|note|write down)(?: that| down that)? (?:i |we )?(?:just )?(?:called|phoned|rang|met|e-?mailed|spoke|talked|had)\b",
        s,
    ):
        return "log_activity"
    if _any(  # noqa: SIM102 - the cue, then its exceptions
        r"^(?:log|logged|record|add|create|new|jot|write|make|take|save|enter)\b.*\b(?:note|task|to-?do|call|e-?mail|meeting|visit report)\b|^(?:put|leave|drop|stick|pin)\b.*\b(?:note|task|to-?do)\b|^(?:note|task|to-?do)\b|\b(?:got off the phone with|was on the phone with|just (?:spoke|talked) (?:to|with)|had a (?:call|chat|meeting) with)\b|^(?:i )?(?:just )?(?:called|phoned|rang|spoke (?:to|with)|talked (?:to|with)|met|e-?mailed|emailed|had (?:a |an )?(?:call|meeting|chat))\b|^(?:log|note)\b",
        s,
    ):
        if not _any(
            r"\b(?:tomorrow|next week|next \w+day|at \d|on \w+day)\b.*\b(?:with)\b|\b(?:schedule|book|set up)\b",
            s,
        ) or _any(r"^(?:log|logged|note|jot|called|met|had)", s):
            return "log_activity"
    if _any(
        r"\b(?:schedule|book|arrange|set up|set|put|plan|organi[sz]e|add|fix|pencil|line up)\b.*\b(?:meeting|call|demo|visit|appointment|workshop|session|catch ?up|presentation|review|training)\b|^(?:meet|meeting|call|demo|appointment)\b.*\b(?:with|at)\b|\b(?:book|schedule|arrange|block|reserve)\b.*\b(?:minutes?|hours?|with)\b|^(?:meet|see|visit)\b.*\b(?:tomorrow|today|\w+day|next|the \d+|at \d|in \w+ (?:days?|weeks?))\b|\b(?:put|add|pencil|block)\b.*\bwith\b.*\b(?:calendar|diary|agenda)\b|^(?:i |we )?(?:need|want|would like|'d like) (?:a|an|to have a|to set up a) (?:meeting|call|demo|appointment|site visit|workshop)\b",
        s,
    ):
        return "schedule_meeting"
    if _any(
        r"^(?:show|find|get|open|pull up)(?: me)? .+'s (?:contact|account|record|details|lead|deal|opportunity)\b|\b(?:the |a )?list of\b|^(?:are there|is there|do we have|have we got) any\b|\b(?:check|see|find out) (?:if|whether) (?:we have|there are|there is) any\b|^(?:(?:i (?:need|want) to )?see|let me see|i'?d like to see)\b.*\b(?:in|at|for|from|with)\b",
        s,
    ) and _entity(s):
        return "search_records"
    if _any(
        r"^(?:what'?s|what is) (?:going on|happening|new|the latest|the status) (?:with|at|on|of) .+\b(?:account|customer|client|deal|opportunity|lead|contact|work order|ticket)s?\b",
        s,
    ):
        return "search_records"
    if _any(
        r"^(?:show|list|find|get|give)(?: me)? (?:everyone|everybody|anyone|all the people|the people)\b.*\b(?:at|from|in)\b",
        s,
    ):
        return "search_records"
    if _any(r"^who\b", s) and not _any(
        r"\b(?:contacts?|people|leads?|accounts?|customers?|clients?|prospects?|know|works?|working|deals?|opportunit\w+|at)\b",
        s,
    ):
        return None
    if _any(
        r"^(?:find|search|look ?up|lookup|look(?:ing)? for|i'?m looking for|list|who|which|any|pull up|get me|fetch|show (?:me )?(?:all |every |the |my )?(?:\w+ ){1,2}(?:in|for|at|with|from|named|called))\b",
        s,
    ) or _any(r"\b(?:named|called)\b", s):
        return "search_records"
    if _any(
        r"^(?:show|show me|open|open up|pull up|go to|go back to|back to|take me to|switch to|navigate to|bring up|display|view|jump to|the)?\s*(?:my |the |all )?(?:"
        + "|".join(p for _, p in SCREENS)
        + r")(?: (?:screen|page|view|tab|list|board|section))?(?: please)?$",
        s,
    ):
        return "navigate"
    return None


def _first(pairs: list[tuple[str, str]], t: str) -> tuple[str, re.Match[str]] | None:
    best: tuple[str, re.Match[str]] | None = None
    for key, pat in pairs:
        m = re.search(rf"\b(?:{pat})\b", t)
        if m and (best is None or m.start() < best[1].start()):
            best = (key, m)
    return best


def _ordered(pairs: list[tuple[str, str]], t: str) -> str | None:
    for key, pat in pairs:
        if re.search(rf"\b(?:{pat})\b", t):
            return key
    return None


def _strip_name(v: str) -> str:
    v = v.strip(" ,.;:!?\"'")
    v = re.sub(r"^(?:the|a|an|our|my|this|that|mr\.?|ms\.?|mrs\.?)\s+", "", v, flags=re.IGNORECASE)
    v = re.sub(r"['\u2019]s$", "", v)
    return v.strip(" ,.;:!?\"'")


def _tidy_note(v: str) -> str:
    v = v.strip(" ,.;:!?-\"'")
    v = re.sub(r"^(?:(?:and|then|also|just|so|but|please|pls)[\s,]+)+", "", v, flags=re.IGNORECASE)
    v = re.sub(
        r"^(?:and |then |also |just )?(?:(?:that|saying|about|re|regarding|to|notes?)\b|:)\s*[:,]?\s*",
        "",
        v,
        flags=re.IGNORECASE,
    )
    v = re.sub(r"^(?:that|saying|about|re|regarding|to)\s+", "", v, flags=re.IGNORECASE)
    v = re.sub(r"\s+(?:please|thanks|thank you)$", "", v, flags=re.IGNORECASE)
    return v.strip(" ,.;:!?-\"'")


def _cut(text: str, spans: tuple[tuple[int, int], ...]) -> str:
    merged: list[list[int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out = text
    for a, b in reversed(merged):
        out = out[:a] + " " + out[b:]
    return re.sub(r"\s+", " ", out).strip()


def _entity(t: str) -> str | None:
    hit = _first(ENTITY_WORDS, t)
    return hit[0] if hit else None


_NAME_END = r"(?=\s*(?:[,:;]|$|\s(?:about|re|regarding|saying|that|to say|and (?:she|he|they)|she|he|they|on|at \d|at (?:half|quarter|noon)|tomorrow|today|tonight|next|this|in \d|in (?:a|an|one|two|three|four) |the day after|for \d|for (?:a|an|half|one|two|three|\d|\w+day|tomorrow|today|next|the \d)|from \w+day|by|with|who|priority|urgent|high|low|normal|email|e-mail|phone|mobile|worth|amount|valued|stage|in (?:the )?\w+ stage|please|pls|called|as|is|was|were|asap|due|\w+day)\b))"


_CONNECT = {
    "of",
    "de",
    "von",
    "van",
    "der",
    "den",
    "und",
    "and",
    "&",
    "la",
    "le",
    "du",
    "da",
    "di",
    "y",
}


# Words that never continue a name typed in lower case: what follows is the rest of the
# sentence ("zanele dlamini prefers whatsapp", "camille laurent we went through ...").
_NAME_STOP = frozenset(
    str.split(
        """
    i me we us you he him she her they them it its his their our my your this that these those
    the a an to about re regarding in into on at from by with for who which because since so
    but is are was were be been has have had will would can could should won't can't isn't
    doesn't don't didn't wasn't prefers wants needs said says told asked agreed confirmed sent
    left went discussed called phoned emailed e-mailed met mentioned wanted needed likes
    keeps just also today tomorrow yesterday tonight now please pls asap send call check prepare
    follow order book update review fix replace arrange email chase confirm organise organize
    schedule ask get make visit inspect repair service install remove deliver pick
    """
    )
)


def _lower_run(v: str) -> str:
    """A name typed in lower case ends before the first word that cannot be part of it."""
    words = v.split()
    for i, w in enumerate(words):
        if i > 0 and w.casefold().strip(",.;:") in _NAME_STOP:
            return " ".join(words[:i])
    return v


def _cap_run(v: str) -> str:
    """'Kessler Bau the gate code' -> 'Kessler Bau': a capitalised name ends at a lower-case word."""
    words = v.split()
    if words and words[0][:1].islower() and not any(c.isupper() for c in v):
        return _lower_run(v)
    if not words or not (words[0][:1].isupper() or words[0][:1].isdigit()):
        return v
    for i, w in enumerate(words[1:], start=1):
        if w[:1].islower() and w.casefold() not in _CONNECT:
            return " ".join(words[:i])
    return v


def _name_after(pattern: str, text: str) -> tuple[str, tuple[int, int]] | None:
    m = re.search(rf"{pattern}\s+(.+?){_NAME_END}", text, flags=re.IGNORECASE)
    if not m:
        return None
    v = _cap_run(_strip_name(m.group(1)))
    if not v or v.casefold() in _CAP_STOP:
        return None
    return v, (m.start(1), m.end(1))


def _email(text: str) -> tuple[str, tuple[int, int]] | None:
    m = re.search(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", text)
    if m:
        return m.group(0).rstrip("."), (m.start(), m.end())
    m = re.search(
        r"\b([a-z0-9]+(?:(?: dot | underscore | dash )[a-z0-9]+)*) at ((?:[a-z0-9-]+ dot )+[a-z]{2,})\b",
        text,
        flags=re.IGNORECASE,
    )
    if m:
        local = m.group(1).replace(" dot ", ".").replace(" underscore ", "_").replace(" dash ", "-")
        local = local.split()[-1] if " " in local else local
        dom = m.group(2).replace(" dot ", ".")
        # The local part starts after the keyword that introduces it ("email ahmed dot hassan").
        words = m.group(1).split()
        keep: list[str] = []
        for w in reversed(words):
            if w in ("email", "e-mail", "mail", "address", "is"):
                break
            keep.append(w)
        local = (
            " ".join(reversed(keep))
            .replace(" dot ", ".")
            .replace(" underscore ", "_")
            .replace(" dash ", "-")
            .replace(" ", "")
        )
        start = m.start(1) + len(m.group(1)) - len(" ".join(reversed(keep)))
        return f"{local}@{dom}", (start, m.end())
    return None


_DIGIT = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
          "six": "6", "seven": "7", "eight": "8", "nine": "9"}  # fmt: skip


def _spoken_digits(text: str) -> str:
    """'plus four nine one five one ...' -> '+49151...': runs of four or more digit words."""
    words = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)"

    def repl(m: re.Match[str]) -> str:
        digits = "".join(_DIGIT[w] for w in m.group(2).casefold().split())
        return ("+" if m.group(1) else "") + digits

    return re.sub(rf"\b(plus )?((?:{words} ){{3,}}{words})\b", repl, text, flags=re.I)


def _phone(text: str) -> tuple[str, tuple[int, int]] | None:
    m = re.search(r"(\+?\d[\d ()/-]{4,}\d)", text)
    if not m:
        return None
    raw = m.group(1)
    if len(re.sub(r"\D", "", raw)) < 5:
        return None
    return ("+" if raw.startswith("+") else "") + re.sub(r"\D", "", raw), (m.start(), m.end())


def _amount(text: str) -> tuple[float, tuple[int, int]] | None:
    from assistant.text import NUM_WORD

    num = rf"(?:(?:(?:a |one )?half (?:a |of a )?|(?:a |one )?quarter (?:of )?(?:a )?)(?:million|thousand)|\d[\d,]*(?:\.\d+)?\s?(?:k|m|million|thousand|mil|bn)?|(?:{NUM_WORD}|a|point|hundred|thousand|million|and)(?:[ -](?:{NUM_WORD}|point|hundred|thousand|million|and))*)"
    for m in re.finditer(
        rf"(?:[$€£]\s?)?\b({num})\b(?:\s?(?:euros?|eur|dollars?|usd|bucks|pounds?))?",
        text,
        flags=re.IGNORECASE,
    ):
        raw = m.group(1).strip()
        if re.fullmatch(r"(?:a|and|point)", raw, flags=re.IGNORECASE):
            continue
        n = words_to_number(re.sub(r"\bmil\b", "million", raw).replace("bn", "000 million"))
        if n is None:
            continue
        has_scale = re.search(r"k|m\b|million|thousand|hundred", raw, flags=re.IGNORECASE)
        if n >= 1000 or has_scale:
            return n, (m.start(), m.end())
    return None


def slots_for(intent: str, text: str, now: datetime) -> dict[str, Any]:
    """Slots of `intent` read from the cleaned text."""
    t = text.casefold()
    fn = _SLOTS.get(intent)
    try:
        return fn(text, t, now) if fn else {}
    except OverflowError:  # a date past year 9999 ("tomorrow" on 9999-12-31)
        return {}


def _search(text: str, t: str, now: datetime) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    ent = _entity(t)
    if re.search(r"\b(?:who|everyone|everybody|anyone|anybody)\b.*\bat\b", t) and ent is None:
        ent = "contact"
    if ent:
        slots["entity"] = ent
    work = text
    terr = re.search(
        r"\b(?:in |for |from )?(?:the )?(?:(?:territory|region|area) ([A-Z][\w-]*(?: [A-Z][\w-]*)*)|([\w-]+(?: [A-Z][\w-]*)*) (?:territory|region|area))\b",
        work,
    )
    if terr:
        slots["territory"] = terr.group(1) or terr.group(2)
        work = work[: terr.start()] + work[terr.end() :]
    city = re.search(
        r"\b(?:in|near|around|based in|located in|out of|(?:heading|going|driving|travell?ing|flying) to|on my way to)\s+([A-Za-zÀ-ÿ][\w.-]*(?: [A-Z][\w-]*)*)",
        work,
    )
    if city and city.group(1).casefold() not in _NOT_CITY:
        slots["city"] = city.group(1)
        work = work[: city.start()] + work[city.end() :]
    ents = "|".join(p for _, p in ENTITY_WORDS)
    poss = re.search(
        rf"^(?:show|find|get|open|pull up)(?: me)? (?:the )?(.+?)['\u2019]s (?:{ents})\b",
        work,
        flags=re.I,
    )
    if poss:
        slots["name"] = _strip_name(poss.group(1))
        return slots
    nm = None
    for prep in (r"\b(?:named|called)", r"\b(?:at|with|from|of)", r"\b(?:for|on)"):
        nm = _name_after(prep, work)
        if nm and not re.search(rf"\b(?:{ents})\b", nm[0], flags=re.I):
            break
        nm = None
    if nm is None:
        nm = _name_after(r"\b(?:at|for|with|from|named|called|of|on)", work)
    if nm is None:
        nm = _name_after(
            rf"^(?:.*?\b(?:find|search(?: for)?|look ?up|lookup|show(?: me)?|pull up|get|list|open)(?: the| me| all| any| our| my)?)(?: (?:{ents}))?",
            work,
        )
        if nm and re.fullmatch(
            rf"(?:(?:all|my|our|the|open|any)\s+)*(?:{ents})", nm[0], flags=re.IGNORECASE
        ):
            nm = None
    if nm is None:
        m = re.search(
            rf"^(?:.*?\b(?:find|search(?: for)?|look ?up|lookup|show(?: me)?|pull up|get)\s+)(?:the |an? )?(.+?)\s+(?:{ents})\b",
            work,
            flags=re.IGNORECASE,
        )
        if m and not re.fullmatch(
            r"(?:all|my|our|open|any|every|the)", m.group(1), flags=re.IGNORECASE
        ):
            nm = (_strip_name(m.group(1)), (m.start(1), m.end(1)))
    if nm:
        v = re.sub(rf"\s+(?:{ents})$", "", nm[0], flags=re.IGNORECASE)
        v = re.sub(
            rf"^(?:(?:all|my|our|open|any)\s+)*(?:(?:{ents})\s+)", "", v, flags=re.IGNORECASE
        )
        v = re.sub(r"^(?:(?:me|all|the|any|our|my|open)\s+)+", "", v, flags=re.I)
        v = _strip_name(re.sub(r"^(?:at|for|with|from|of|on|named|called)\s+", "", v, flags=re.I))
        if (
            v
            and not re.fullmatch(
                rf"(?:{ents}|all|me|us|it|them|any|the|every|our|my|open)", v, flags=re.IGNORECASE
            )
            and not re.match(_NOT_NAME_START, v, flags=re.I)
        ):
            slots["name"] = v
    return slots


_NOT_CITY = {
    "the", "my", "our", "progress", "stage", "me", "us", "there", "here", "it", "them", "contacts",
    "leads", "accounts", "customers", "clients", "deals", "opportunities", "prospects", "tickets",
    "jobs", "activities", "crm", "the system", "pipeline",
}  # fmt: skip
# A name never starts with a pronoun or an auxiliary ("the customers we have in Osaka").
_NOT_NAME_START = r"(?:we|i|you|they|he|she|it|us|me|is|are|do|does|did|have|has|there|and|or)\b"


_PERSON = r"([A-Z][\w'-]+(?: (?:[A-Z][\w'-]+|de|van|von|da|di|al|el|bin|le))*? [A-Z][\w'-]+)"


def _person_before(text: str) -> tuple[str, str | None] | None:
    """The last person's name (two or more capitalised words) said in `text`, with the
    organisation said right after it ("Ravi Patel from Pune Foods"), for a later "him"."""
    found = list(
        re.finditer(
            _PERSON + r"(?:,? (?:from|at|of|with) ([A-Z][\w&'-]*(?: [A-Z][\w&'-]*)*))?", text
        )
    )
    if not found:
        low = re.search(
            r"\b([a-z][\w'-]+ [a-z][\w'-]+)(?: (?:from|at) ([a-z][\w&'-]*(?: [a-z][\w&'-]*)?))? (?:wants|needs|asked|would like|is interested|called|rang|said|told)\b",
            text,
        )
        if low and low.group(1).split()[0] not in _NAME_STOP | {"so", "hey", "ok", "okay"}:
            return low.group(1), low.group(2)
        return None
    m = found[-1]
    return m.group(1), m.group(2)


def _create_record(text: str, t: str, now: datetime) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    hit = _first(
        [(k, p) for k, p in ENTITY_WORDS if k in ("account", "contact", "lead", "opportunity")], t
    )
    if hit:
        slots["entity"] = hit[0]
    work = text
    spans: list[tuple[int, int]] = []
    em = _email(work)
    if em:
        slots["email"] = em[0]
        spans.append(em[1])
    work2 = _spoken_digits(_cut(work, tuple(spans)))
    ph = (
        _phone(re.sub(r"\b(?:worth|for|amount|valued at)\s+\S+", "", work2))
        if re.search(r"\b(?:phone|mobile|number|tel|cell)\b|\+\d", work2, re.I)
        else None
    )
    if ph:
        slots["phone"] = ph[0]
        work2 = re.sub(
            re.escape(ph[0]) if False else r"(\+?\d[\d ()/-]{4,}\d)", " ", work2, count=1
        )
    if slots.get("entity") == "opportunity" or re.search(
        r"\b(?:worth|amount|valued|for \d|\d+k\b)", work2, re.I
    ):
        am = _amount(work2)
        if am:
            slots["amount"] = int(am[0]) if am[0] == int(am[0]) else am[0]
            work2 = work2[: am[1][0]] + " " + work2[am[1][1] :]
    st = None
    for key, pat in STAGES:
        m = re.search(rf"\b(?:at |in |stage |,\s*)?(?:{pat})(?: stage)?\b", work2, flags=re.I)
        if m and slots.get("entity") in ("opportunity", None):
            st = key
            work2 = work2[: m.start()] + " " + work2[m.end() :]
            break
    if st:
        slots["stage"] = st
    work2 = re.sub(
        r"\b(?:worth|amount|valued at|with an? (?:amount|value) of|value|stage|email|e-mail|phone|mobile|number|tel)\b[:,]?",
        " ",
        work2,
        flags=re.I,
    )
    work2 = re.sub(r"\s+", " ", work2).strip(" ,")
    ents = r"(?:account|contact|leads?|prospect|opportunity|deal|opp|customer|client|company)"
    body = None
    m = re.search(
        rf"^(?:.*?\b)?(?:add|create|register|enter)\s+(.+?)\s+as\s+(?:a |an )?(?:new )?{ents}\b(.*)$",
        work2,
        flags=re.I,
    )
    if m is None:
        m = re.search(
            r"^(?:.*?\b)?(?:add|put|save|enter)\s+(.+?)\s+(?:to|in|into) (?:my |our |the )?(?:contacts|leads|accounts|prospects|customers|clients)\b(.*)$",
            work2,
            flags=re.I,
        )
    if m:
        body = m.group(1) + " " + m.group(2)
        if re.fullmatch(r"(?:him|her|them|this (?:guy|person|one))", m.group(1).strip(), re.I):
            # "met Lars Nilsen from Fjord Seafood at the fair, add him as a lead"
            party = _person_before(work2[: m.start(1)])
            if party:
                body = party[0] + (f" from {party[1]}" if party[1] else "")
    else:
        m = re.search(
            rf"^(?:.*?\b)?(?:add|create|new|make|register|enter|set up|open|start|put in|key in|log)\b(?:\s+(?:a|an))?(?:\s+new)?\s+(?:{ents})(?:\s+(?:{ents}))?\b[:,]?\s*(?:(?:for|called|named|with|:)\s+)?(.*)$",
            work2,
            flags=re.I,
        )
        if m:
            body = m.group(1)
    if body is not None:
        body = body.strip(" ,:")
        # Spoken: "her name is Julia Chen she works at Fabrikam and ..."
        said = re.search(
            r"\bname is\s+(.+?)(?=\s+(?:she|he|they|and|from|at)\b|[,;]|$)", body, flags=re.I
        )
        works = re.search(
            r"\b(?:works|working|is|'s|are|they're) (?:at|for|with)\s+(.+?)(?=\s+(?:and|she|he|they)\b|[,;]|$)",
            body,
            flags=re.I,
        )
        pron = re.search(r"[\s,;]+(?:she|he|they)(?:'s|'re| is| are| works| work)?\b", body, re.I)
        if pron and not said:
            if (
                works
                and works.start() > pron.start()
                and slots.get("entity") in ("contact", "lead")
            ):
                slots["company"] = _strip_name(works.group(1))
            body = body[: pron.start()]
        if said:
            if works and slots.get("entity") in ("contact", "lead"):
                slots["company"] = _strip_name(works.group(1))
            body = said.group(1)
        comp = re.search(
            r"\s+(?:at|from|of|for|with|to|works at|working at|@)\s+(.+?)\s*(?:[,;]|$|\s(?:please|pls|with|and)\b)",
            body,
            flags=re.I,
        )
        if comp is None and slots.get("entity") in ("contact", "lead"):
            # "Carlos Mendoza, Andes Mining, +56 ...": a capitalised second item is the company
            comp = re.search(r",\s*([A-Z][\w&'.-]*(?: [A-Z&][\w&'.-]*)*)\s*(?:[,;]|$)", body)
        if comp and re.fullmatch(r"(?:them|him|her|it|us|me)", comp.group(1).strip(), re.I):
            body = body[: comp.start()]
            comp = None
        if comp and slots.get("entity") in ("contact", "lead"):
            slots["company"] = _cap_run(_strip_name(comp.group(1)))
            body = body[: comp.start()]
        elif (
            comp
            and slots.get("entity") == "opportunity"
            and re.match(r"\s+(?:with|for|at)\b", comp.group(0))
        ):
            # "new opportunity with Vestas": the company is the deal's name.
            body = comp.group(1) if not body[: comp.start()].strip() else body[: comp.start()]
        name = re.split(r"\s*[,;]\s*|\s+(?:please|pls)\b", body)[0]
        name = re.sub(r"\s+(?:with|and)$", "", name.strip(), flags=re.I)
        if slots.get("entity") == "account":
            name = re.sub(r"\s+(?:in|from)\s+[A-Z][\w-]*$", "", name)
        name = re.sub(r"\s+(?:at|in|for)$", "", name.strip())
        name = _strip_name(name)
        if name:
            slots["name"] = name
    return slots


def _update(text: str, t: str, now: datetime) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    ent = _entity(re.sub(r"\bjob title\b", "title", t))
    wo = re.search(r"\b(wo-?\s?\d+)\b", text, flags=re.I) or re.search(
        r"\bwork ?order (?:no\.? |number |#)?(\d{3,})\b", text, flags=re.I
    )
    if wo:
        ent = "work_order"
    fieldv: str | None = None
    value: Any = None
    if re.search(r"\brename\b|\bname to\b|\bchange (?:the )?name\b", t):
        fieldv = "name"
    elif re.search(r"\b(?:stage)\b|\b(?:won|lost)\b|\bnegotiat", t):
        fieldv = "stage"
    elif re.search(r"\b(?:amount|value|worth)\b", t):
        fieldv = "amount"
    elif re.search(
        r"\bclose ?date\b|\bclosing date\b|\bexpected close\b|\bcloses? (?:on|by|in)\b", t
    ):
        fieldv = "close_date"
    elif re.search(r"\bdue(?: date)?\b|\bdeadline\b", t):
        fieldv = "due_date"
    elif re.search(r"\bpriority\b|\b(?:urgent|critical|emergency)\b", t):
        fieldv = "priority"
    elif re.search(r"\bowner\b|\bassign|\breassign|\bhand (?:over|off)\b", t):
        fieldv = "owner"
    elif re.search(r"\bemail\b|\be-mail\b|@", t):
        fieldv = "email"
    elif re.search(r"\bphone\b|\bnumber\b|\bmobile\b|\bcell\b|\btel\b", t):
        fieldv = "phone"
    elif re.search(r"\b(?:job )?title\b|\bposition\b|\brole\b", t):
        fieldv = "title"
    elif re.search(r"\baddress\b", t):
        fieldv = "address"
    elif re.search(
        r"\bstatus\b|\b(?:back )?to open\b|\bqualif|\bdisqualif|\bjunk\b|\bnot interested\b|\bcontacted\b|\bon hold\b|\bhold\b|\bpause|\breopen|\bclose\b|\bclosed\b|\bdone\b|\bfinish|\bcomplete|\bcancel|\bin progress\b|\bscheduled\b",
        t,
    ):
        fieldv = "status"
    if fieldv is None and re.search(r"\b(?:qualified|new)\b", t):
        fieldv = "status"
    if fieldv is None and ent in (None, "opportunity") and _amount(text):
        fieldv = "amount"
    if ent is None:
        if fieldv in ("stage", "amount", "close_date"):
            ent = "opportunity"
        elif fieldv in ("phone", "email", "title"):
            ent = "contact"
        elif fieldv in ("due_date", "priority"):
            ent = "work_order"
        elif fieldv == "status" and re.search(
            r"\bqualif|\bdisqualif|\bjunk\b|\bnot interested\b|\bcontacted\b", t
        ):
            ent = "lead"
        elif fieldv == "status":
            ent = "work_order"
        elif fieldv in ("address", "owner", "name"):
            ent = "account"
    if ent:
        slots["entity"] = ent
    if fieldv:
        slots["field"] = fieldv
    # The value.
    text = _spoken_digits(text) if fieldv == "phone" else text
    tail_m = re.search(r"\b(?:to|is now|now|as|=|:)\s+(.+)$", text, flags=re.I)
    if tail_m is None:
        tail_m = re.search(r"\bis\s+(.+)$", text, flags=re.I)
    tail = tail_m.group(1).strip() if tail_m else ""
    if fieldv == "stage":
        value = _ordered(STAGES, t)
    elif fieldv == "priority":
        value = _ordered(PRIORITIES, tail.casefold() or t)
    elif fieldv == "amount":
        am = _amount(tail or text)
        value = (int(am[0]) if am[0] == int(am[0]) else am[0]) if am else None
    elif fieldv in ("close_date", "due_date"):
        d = when.find_date(tail or text, now)
        value = d.value if d else None
    elif fieldv == "email":
        em = _email(text)
        value = em[0] if em else None
    elif fieldv == "phone":
        ph = _phone(tail or text)
        value = ph[0] if ph else None
    elif fieldv == "status":
        if re.search(r"\bdisqualif|\bjunk\b|\bnot interested\b|\bunqualif", t):
            value = "disqualified"
        elif re.search(r"\bqualif", t):
            value = "qualified"
        elif re.search(r"\bcontacted\b", t):
            value = "contacted"
        elif re.search(r"\bon hold\b|\bhold\b|\bpause", t):
            value = "on_hold"
        elif re.search(r"\bcancel", t):
            value = "cancelled"
        elif re.search(r"\breopen|\bopen\b", t):
            value = "open"
        elif re.search(r"\bin progress\b|\bstarted\b", t):
            value = "in_progress"
        elif re.search(r"\bscheduled\b", t):
            value = "scheduled"
        elif re.search(r"\bclose|\bdone\b|\bfinish|\bcomplete", t):
            value = "completed"
        elif re.search(r"\bnew\b", t):
            value = "new"
    elif fieldv in ("name", "owner", "title", "address"):
        m = re.search(r"\b(?:to|is now|as|=|:)\s+(.+)$", text, flags=re.I) or re.search(
            r"\bis\s+(.+)$", text, flags=re.I
        )
        if fieldv == "owner" and not m:
            m = re.search(r"\bassign(?:ed)?\b.*?\bto\s+(.+)$", text, flags=re.I)
        if m:
            value = _strip_name(re.sub(r"\s+(?:please|pls)$", "", m.group(1), flags=re.I))
            if fieldv in ("title", "address"):
                value = m.group(1).strip(" .!?")
            value = re.sub(
                r",\s*(?:please |can you |could you )*(?:update|change|set|make|save|put)\b.*$",
                "",
                value,
                flags=re.I,
            )
    if value not in (None, ""):
        slots["value"] = value
    # The record.
    name: str | None = None
    if wo:
        code = re.sub(r"\s+", "", wo.group(1)).upper()
        name = ("WO-" + code if code.isdigit() else code.replace("WO", "WO-")).replace("--", "-")
    else:
        ents = "|".join(p for _, p in ENTITY_WORDS)
        pats = [
            rf"\b(?:the )?([A-Za-zÀ-ÿ0-9][\w&.-]*(?: [A-Za-zÀ-ÿ0-9][\w&.-]*){{0,4}}?)(?:'s| (?:{ents}))\b",
            rf"\b(?:{ents})\s+([A-Za-zÀ-ÿ0-9][\w&.-]*(?: [A-Za-zÀ-ÿ0-9][\w&.-]*){{0,4}}?)(?:\s+(?:to|as|is|title|stage|amount|status|phone|email|owner|address)\b|$)",
            rf"\b(?:of|for|on)\s+(?:the\s+)?([A-Za-zÀ-ÿ0-9][\w&.-]*(?: [A-Za-zÀ-ÿ0-9][\w&.-]*){{0,4}}?)(?:\s+(?:{ents}))?\s+(?:to|as)\b",
            r"^([A-Z][\w&.-]*(?: [A-Z][\w&.-]*){0,4})\s+(?:is|are|has|was)\b",
            # typed in lower case: "priya nair is not interested", "jan novak has a new number"
            r"^((?!(?:the|my|our|this|that|we|i|it|he|she|they|there)\b)[a-zà-ÿ][\w&.'-]*(?: [a-zà-ÿ][\w&.'-]*){0,3}?)\s+(?:is|are|has|was|got)\s+(?:now|not|no longer|a|an|the|new|qualified|disqualified|won|lost|closed|done|finished|on hold|junk)\b",
            r"^(?:\w+\s+)?([A-Z][\w&.-]*(?: [A-Z][\w&.-]*){0,4})\b",
        ]
        if fieldv == "name":
            pats.insert(0, rf"\brename\s+(?:the\s+)?(?:(?:{ents})\s+)?(.+?)\s+to\b")
        for p in pats:
            for m in re.finditer(p, text, flags=0 if p.startswith("^") else re.I):
                cand = _strip_name(m.group(1))
                cand = re.sub(r"^.*\b(?:of|on|for)\s+(?:the\s+)?", "", cand, flags=re.I)
                cand = re.sub(
                    r"^(?:(?:please|change|update|set|mark|move|push|put|pull|assign|reassign|qualify|disqualify|rename|the|of|for|on|we|lost|won)\s+)+",
                    "",
                    cand,
                    flags=re.I,
                )
                cand = re.sub(
                    rf"^(?:(?:{ents}|stage|amount|status|priority|owner|title|address|phone|email|mobile|close date|due date|name|of|the|on)\s+)+",
                    "",
                    cand,
                    flags=re.I,
                )
                if cand and not re.fullmatch(
                    rf"(?:{ents}|stage|amount|status|priority|owner|title|address|phone|email|mobile|number|it|this|that|the|a|an|due date|close date|job title|name|change|update|set|mark|move|push|put|close|rename|qualify|disqualify|assign|reassign|we|lost|won)",
                    cand,
                    flags=re.I,
                ):
                    name = cand
                    break
            if name:
                break
    if name:
        slots["name"] = name
    return slots


ACTIVITY = [
    ("call", r"call(?:ed)?|phoned?|rang|ring|spoke|talked|voicemail"),
    ("email", r"e-?mail(?:ed)?|mailed|wrote to"),
    ("meeting", r"meeting|met|meet|had a chat|sat down"),
    ("task", r"task|to-?do|follow-?up task"),
    ("note", r"note|jot|write down|memo"),
]


def _log(text: str, t: str, now: datetime) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    # "log that I phoned Kenji": what happened is said after the request to log it
    text = re.sub(
        r"^(?:log|record|note|write down|put down)(?: (?:that|down that|down))?\s+(?=(?:i |we )?(?:just )?(?:called|phoned|rang|met|e-?mailed|spoke|talked|had|got off)\b)",
        "",
        text,
        flags=re.I,
    )
    t = text.casefold()
    head = t[:40]
    atype = None
    for key, pat in [ACTIVITY[3], ACTIVITY[4], ACTIVITY[0], ACTIVITY[1], ACTIVITY[2]]:
        m = re.search(rf"\b(?:{pat})\b", head)
        if m and (atype is None or m.start() < atype[1]):
            atype = (key, m.start())
    if atype:
        slots["activity_type"] = atype[0]
    # Who: after with/to/for/on, or straight after the verb.
    colon = re.search(
        r"^(?:log|add|create|new|jot down|make|record|write)\b[^:]*?\b(?:note|task|to-?do|call|e-?mail|meeting)\s*:",
        text,
        flags=re.I,
    )
    verb_cut = re.sub(
        r"^.*?\b(?:log(?:ged)?|add(?:ed)?|create|new|jot down|make|record|write)\b(?: (?:a|an|the))?(?: new)? (?:call|e-?mail|meeting|note|task|to-?do)\b",
        "",
        text,
        flags=re.I,
    )
    # "add a task to send Hollandia the invoice": what follows "to" is the task, not a party.
    if (
        atype
        and atype[0] in ("task", "note")
        and re.match(r"\s*(?:to|that|the|[:,])\s*[a-z]", verb_cut)
    ):
        colon = None
        no_party = True
    else:
        no_party = False
    # "called Peter Novak about the renewal": the party straight after the verb comes first
    first = re.search(
        r"^(?:i\s+)?(?:just\s+)?(?:called|phoned|rang|met(?: with)?|e-?mailed|spoke (?:to|with)|talked (?:to|with))\s+([A-Z][\w'-]*(?: [A-Z][\w'-]*)*)",
        text,
    )
    nm = (
        (first.group(1), (first.start(1), first.end(1)))
        if first
        else None
        if colon or no_party
        else _name_after(
            r"\b(?:with|w/|to|for|on|about|from)",
            re.sub(
                r"^.*?\b(?:log(?:ged)?|add(?:ed)?|create|new|jot down|make|record|write)\b(?: (?:a|an|the))?(?: new)? (?:call|e-?mail|meeting|note|task|to-?do)\b",
                "",
                text,
                flags=re.I,
            )
            or text,
        )
    )
    m = None
    if nm is None and not no_party:
        m = re.search(
            r"^(?:i\s+)?(?:just\s+)?(?:called|phoned|rang|met(?: with)?|e-?mailed|emailed|spoke (?:to|with)|talked (?:to|with)|had (?:a |an )?(?:call|meeting|chat) with)\s+(.+?)"
            + _NAME_END,
            text,
            flags=re.I,
        )
        if m is None:
            m = re.search(
                r"^(?:log|note|task)(?:\s+(?:a|an))?\s+(?:call|e-?mail|meeting|note|task)?\s*(?:for\s+)?(.+?)"
                + _NAME_END,
                text,
                flags=re.I,
            )
        if m:
            nm = (_cap_run(_strip_name(m.group(1))), (m.start(1), m.end(1)))
    name = None
    if nm:
        cand = nm[0]
        cand = re.sub(r"\s+(?:today|yesterday|this morning|earlier)$", "", cand, flags=re.I)
        if cand and not re.fullmatch(
            r"(?:him|her|them|it|the customer|customer|this|that|call|note|task|e-?mail|meeting|to-?do)",
            cand,
            flags=re.I,
        ):
            name = cand
    if name:
        slots["name"] = name
    # Notes: what follows the name or the activity words.
    rest = None
    if name:
        idx = text.find(name)
        if idx >= 0:
            rest = text[idx + len(name) :]
    if rest is None:
        m2 = re.search(
            r"\b(?:note|task|to-?do|call|e-?mail|meeting)\b[:,]?\s*(.*)$", text, flags=re.I
        )
        rest = m2.group(1) if m2 else ""
    rest = re.sub(
        r"^\s*(?:today|yesterday|this morning|earlier today|earlier|just now)\b",
        "",
        rest.strip(),
        flags=re.I,
    )
    rest = re.sub(r"^['\u2019]s\b", "", rest)
    rest = re.sub(
        r"^[\s,]*(?:(?:from|at|of) [A-Z][\w&'-]*(?: [A-Z][\w&'-]*)*[\s,]*)?(?:and\s+)?", "", rest
    )
    rest = re.sub(
        r"^\s*(?:from|at|of) [a-z][\w&'-]*(?: [a-z][\w&'-]*){0,3}? (?:and )?(?=(?:she|he|they|we|i)\b)",
        "",
        rest,
    )
    rest = re.sub(
        r"^(?:on the phone|over the phone|by phone|via e-?mail|by e-?mail|in person|on teams|on zoom|on a video call)\b",
        "",
        rest,
        flags=re.I,
    )
    rest = re.sub(
        r"\s+(?:this (?:morning|afternoon)|today|yesterday|earlier(?: today)?|just now)\s*$",
        "",
        rest,
        flags=re.I,
    )
    notes = _tidy_note(rest)
    if notes and notes.casefold() not in ("please", "today", "now"):
        slots["notes"] = notes
    return slots


def _schedule(text: str, t: str, now: datetime) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []
    dur = when.find_duration(text)
    if dur:
        slots["duration_min"] = int(dur.value)
        spans.extend(dur.spans)
    rel = when.find_relative(text, now)
    if rel:
        slots["date"], slots["time"] = rel.value.split("T")
    else:
        d = when.find_date(text, now)
        if d:
            slots["date"] = d.value
        tm = when.find_time(_cut(text, tuple(spans)))
        if tm:
            slots["time"] = tm.value
    nm = _name_after(
        r"\b(?:with|w/|meet(?: up)?(?: with)?|for|at|(?:visit|trip|drive|go) to)", text
    )
    pron = re.search(r"\b(?:with|meet|see)\s+(?:him|her|them)\b", text, flags=re.I)
    if pron and (nm is None or nm[1][0] > pron.start()):
        said = _person_before(text[: pron.start()])
        nm = (said[0], (0, 0)) if said else nm
    if nm:
        v = nm[0]
        if not re.fullmatch(r"\d.*|noon|(?:a|an|the)? ?\w+day|tomorrow|today", v, flags=re.I):
            slots["name"] = v
    return slots


def _report(text: str, t: str, now: datetime) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    if re.search(
        r"\bnew leads?\b|\bleads?\b.*\b(?:came in|come in|new|created|added|arrived)\b|\bhow many leads\b",
        t,
    ):
        metric: str | None = "new_leads"
    elif re.search(r"\bforecast\b", t):
        metric = "forecast"
    elif re.search(r"\bwin ?rate\b|\bclose rate\b|\bconversion\b|\bhit rate\b", t):
        metric = "win_rate"
    elif re.search(r"\bpipeline\b|\bopen deals?\b|\bopen opportunit", t):
        metric = "pipeline_value"
    elif re.search(
        r"\brevenue\b|\bsales\b|\bbookings\b|\bturnover\b|\bdid we (?:make|sell|book|earn)\b", t
    ):
        metric = "revenue"
    elif re.search(r"\balerts?\b|\balarms?\b", t):
        metric = "active_alerts"
    elif re.search(r"\bwork ?orders?\b|\btickets?\b|\bjobs?\b", t):
        metric = "open_work_orders"
    elif re.search(r"\bvisits?\b|\bstops?\b", t):
        metric = "visits"
    elif re.search(r"\bdeals?\b|\bopportunit", t):
        metric = "pipeline_value"
    else:
        metric = None
    if metric:
        slots["metric"] = metric
    period = _period(t, now)
    if period:
        slots["period"] = period
    text = re.sub(
        r"\b(?:at the moment|at present|right now|as of (?:now|today)|at this point)\b", " ", text
    )
    terr = re.search(
        r"\b(?:territory|region|area) ([A-Z][\w-]*(?: [A-Z][\w-]*)*)|\b([A-Z][\w-]*(?: [A-Z][\w-]*)*) (?:territory|region|area)\b",
        text,
    ) or re.search(
        r"\b(?:the|in|for) (?!(?:whole|entire|sales|same|my|our|this|that|each|every)\b)([a-z][\w-]*) (?:territory|region|area)\b()",
        text,
    )
    if terr:
        slots["territory"] = terr.group(1) or terr.group(2)
    else:
        m = re.search(
            r"\b(?:in|for|from|across|at)\s+(?:the\s+)?([A-Za-zÀ-ÿ][\w-]*(?: [A-Z][\w-]*)*)", text
        )
        while m:
            v = m.group(1)
            if (
                v.casefold() not in _NOT_PLACE
                and not re.fullmatch(r"q[1-4]", v, flags=re.I)
                and v.casefold() not in MONTHS_ALL
            ):
                slots["territory"] = v
                break
            m = re.search(
                r"\b(?:in|for|from|across|at)\s+(?:the\s+)?([A-Za-zÀ-ÿ][\w-]*(?: [A-Z][\w-]*)*)",
                text[m.end() :],
            )
    return slots


MONTHS_ALL = set(when.MONTHS) | set(when.MONTH_ABBR)
_NOT_PLACE = {
    "this", "last", "the", "today", "total", "my", "our", "we", "quarter", "month", "year", "week",
    "pipeline", "progress", "revenue", "now", "currently", "february", "north", "a", "q", "all",
    "so", "far", "stage", "first", "second", "third", "fourth", "next", "negotiation", "proposal", "value", "sales", "me",
}  # fmt: skip
_NOT_PLACE.discard("north")


def _period(t: str, now: datetime) -> str | None:
    key = _ordered(PERIOD_WORDS, t)
    if key:
        return key
    m = re.search(r"\bq([1-4])\b|\b(first|second|third|fourth) quarter\b", t)
    if m:
        q = (
            int(m.group(1))
            if m.group(1)
            else ["first", "second", "third", "fourth"].index(m.group(2)) + 1
        )
        cur = (now.month - 1) // 3 + 1
        if q == cur:
            return "this_quarter"
        if q == cur - 1 or (cur == 1 and q == 4):
            return "last_quarter"
        return None
    for i, mo in enumerate(when.MONTHS, start=1):
        if re.search(rf"\b(?:in |for |during )?{mo}\b", t):
            if i == now.month:
                return "this_month"
            if i == (now.month - 2) % 12 + 1:
                return "last_month"
    return None


def _navigate(text: str, t: str, now: datetime) -> dict[str, Any]:
    hit = _first(SCREENS, t)
    return {"screen": hit[0]} if hit else {}


def _device(text: str, t: str, now: datetime) -> dict[str, Any]:
    work = digits_for_words(text)
    # a gas named in the alert's kind is no device ("the CO2 alarm", "NH3 leak alert")
    work = re.sub(r"\b(?:co2|o2|nh3|h2s|no2|ch4|h2|so2)\b", " ", work, flags=re.I)
    # a hyphenated code with a digit in it, whatever the case of its parts ("CMP-ab12",
    # "pmp-0042", "AHU-3-B"): cut at the first letter after the hyphen it lost its end
    m = re.search(r"\b([A-Za-z]{1,6}(?:-[A-Za-z0-9]{1,8}){1,3})\b", work)
    if m and re.search(r"\d", m.group(1)):
        return {"device": m.group(1)}
    # an upper-case prefix makes it a code without a digit too ("CMP-dead", "AHU-B"): with
    # no slot the alert of another device could be taken ("the only open one")
    m = re.search(r"\b([A-Z]{2,6}(?:-[A-Za-z]{1,8}){1,3})\b", work)
    if m:
        return {"device": m.group(1)}
    m = re.search(r"\b([A-Z]{1,5}-?\d{1,5}[A-Z]?)\b", work)
    if m and not re.fullmatch(r"[A-Z]+", m.group(1)):
        return {"device": m.group(1)}
    m = re.search(r"\b([A-Z]{1,4}\d{1,4})\b", work)
    if m:
        return {"device": m.group(1)}
    m = re.search(r"\b([a-z]{1,5}-\d{1,5}[a-z]?)\b", work) or re.search(
        r"\b(?!(?:am|pm|q)\d)([a-z]{1,4}\d{1,4}[a-z]?)\b", work
    )
    if m:
        return {"device": m.group(1)}
    kinds = r"cold room|cold store|heat pump|air handler|cooling tower|walk-in freezer|pump|chiller|compressor|boiler|freezer|fan|line|unit|sensor|generator|turbine|motor|valve|tank|gateway|fridge|cooler|heater|oven|press|conveyor|meter|hvac|ahu|station|machine|robot|door|room|tower|dryer|mixer|furnace|kiln|lift|elevator|boiler|panel|inverter|battery|scale|oven|truck|van"
    m = re.search(rf"\b({kinds}) (?:number |no\.? |#)?(\d+)\b", work, flags=re.I)
    if m:
        return {"device": f"{m.group(1)} {m.group(2)}"}
    return {}


def _work_order(text: str, t: str, now: datetime) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    work = text
    pr = None
    for key, pat in PRIORITIES:
        m = re.search(
            rf"[,;]?\s*\b(?:(?:it'?s|it is|this is|that'?s|make it|mark it|and it'?s)\s+)?(?:(?:with |at |as )?(?:a |an )?(?:priority (?:is )?|prio )(?:{pat})|(?:{pat})(?:[ -]priority|[ -]prio)?)\b",
            work,
            flags=re.I,
        )
        if m and not re.search(
            r"\b(?:high|low) (?:pressure|temperature|voltage|level|oil|water)\b",
            work[m.start() :].casefold()[:30],
        ):
            pr = key
            mid = bool(work[: m.start()].strip()) and bool(work[m.end() :].strip())
            gap = (
                " , "
                if mid
                and not re.match(r"\s*(?:work ?order|ticket|job|service)", work[m.end() :], re.I)
                else " "
            )
            work = work[: m.start()] + gap + work[m.end() :]
            break
    if pr:
        slots["priority"] = pr
    work = re.sub(r"\s+", " ", work).strip()
    m = re.search(
        r"\b(?:for|at|to|with|@)\s+(.+?)(?=\s*(?:[,:;.-]\s|$|\s(?:because|since|as|re|regarding|about|the |their |they |it |its |to |needs|need|has|is|are|with|-)))",
        work,
        flags=re.I,
    )
    if m is None:
        m = re.search(
            r"\b(?:work ?order|ticket|job|service request)\s+(?!for|at)([A-Z][\w&.-]*(?: [A-Z][\w&.-]*)*)",
            work,
        )
    if m is None:
        # "Aurora Foods needs a technician, the freezer door seal is torn"
        m = re.search(
            r"^([A-Z][\w&.-]*(?: [A-Z][\w&.-]*)*|[a-z][\w&.-]*(?: [a-z][\w&.-]*){0,3}?) (?:needs?|wants?|requires?) (?:a |an |someone|somebody)?(?:tech\w*|engineer|repair|service\w*|to come|out)?\b",
            work,
        )
    name = None
    rest = ""
    needs = re.match(
        r"^(?:the )?(?:customer|client|account|site)?\s*([A-Z][\w&.-]*(?: [A-Z][\w&.-]*)*) (?:needs?|wants?|requires?) (?:a |an )?(?:tech\w*|engineer|repair|service\w*|someone|somebody)\b(?:\s+(?:for|to))?",
        work,
    )
    if needs:
        m = None
        slots["name"] = needs.group(1)
        rest = work[needs.end() :]
    late = re.search(
        r"^(.+?)['\u2019]s (.+?)[,.]? (?:so |please |can you |could you )*(?:create|open|raise|log|make|file) (?:a |an )?(?:new )?(?:work ?order|ticket|job|service request)(?: for (?:it|them|that|this))?$",
        work,
        flags=re.I,
    )
    if late and not needs:
        m = None
        slots["name"] = _strip_name(late.group(1))
        rest = late.group(2)
    if m:
        name = _strip_name(m.group(1))
        rest = work[m.end() :]
        if _cap_run(name) != name:
            cut = _cap_run(name)
            rest = work[m.start(1) + m.group(1).find(cut) + len(cut) :]
            rest = re.sub(
                r"^\s*(?:just )?(?:told|said|says|tells|called|rang|reported|mentioned)(?: (?:me|us))?(?: that)?\b",
                "",
                rest,
            )
            name = cut
        rest = re.sub(
            r"\s+(?:so|and|,)\s+(?:(?:please|can you|could you|would you|i need you to|let's)\s+)*(?:open|create|raise|log|make|add|file|put in|get)\b.*$",
            "",
            rest,
            flags=re.I,
        )
    if name:
        # A lower-case description may follow the name without a comma ("Rhein Chemie pump making noise").
        parts = name.split()
        if len(parts) > 1 and not rest.strip():
            caps = [i for i, w in enumerate(parts) if w[:1].isupper() or w[:1].isdigit()]
            k = 0
            while k < len(parts) and (parts[k][:1].isupper() or parts[k].isupper()):
                k += 1
            if 0 < k < len(parts) and caps:
                rest = " ".join(parts[k:]) + rest
                name = " ".join(parts[:k])
        slots["name"] = name
    rest = re.sub(
        r"^\s*(?:tomorrow|today|tonight|this (?:morning|afternoon|evening)|now|right away)\b",
        "",
        rest,
    )
    desc = _tidy_note(
        re.sub(r"^\s*(?:[,:;-]\s*)?(?:(?:because|since|as|re|regarding|about)\b)?\s*", "", rest)
    )
    if not desc:
        pre = re.search(r"^(.*?)\s*[,;:]\s*(?:(?:create|open|raise|need|log|new)\b.*)?$", text)
        _ = pre
    if desc and desc.casefold() not in ("please", "asap"):
        slots["description"] = desc
    return slots


def _reminder(text: str, t: str, now: datetime) -> dict[str, Any]:
    slots: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []
    low = text.casefold()
    rel = when.find_relative(text, now)
    if rel:
        slots["date"], slots["time"] = rel.value.split("T")
        spans.extend(rel.spans)
    else:
        d = when.find_date(text, now)
        tm = when.find_time(text)
        if d:
            slots["date"] = d.value
            spans.extend(d.spans)
        if tm:
            slots["time"] = tm.value
            spans.extend(tm.spans)
            if not d:
                h, mi = map(int, tm.value.split(":"))
                ahead = (h, mi) > (now.hour, now.minute)
                from datetime import timedelta

                slots["date"] = (now.date() if ahead else now.date() + timedelta(1)).isoformat()
        m = re.search(r"\b(?:this |tomorrow |in the )?(morning|afternoon|evening)\b", low)
        if m:
            spans.append((m.start(), m.end()))
    rest = _cut(text, tuple(spans))
    # "I have to call the depot, so remind me at 9": what to do was said before the request
    before = re.match(
        r"^(?:(?:ok(?:ay)?|so|well)\s+)*(?:i'?ve got to|i have got to|i have to|i need to|i must|i gotta|i should|gotta|need to|have to)\s+(.+?)[\s,;]+(?:so |and |then )?(?:(?:please|can you|could you)\s+)*(?:remind (?:me|us)|set (?:a |an )?reminder|ping me|nudge me)\b",
        rest,
        flags=re.I,
    )
    rest = re.sub(
        r"^.*?\b(?:remind(?:er)?(?: me| us)?|ping me|nudge me|set (?:a |an )?reminder|alert me|(?:do not|don't) let me forget(?: to)?)\b\s*",
        "",
        rest,
        flags=re.I,
    )
    if before and not re.sub(r"[\W_]+|\b(?:at|on|for|by|in|the|this|next)\b", "", rest):
        rest = before.group(1)
    rest = re.sub(
        r"^(?:(?:for|on|at|by|in|the|this|next|tomorrow|morning)\b\s*)+", "", rest, flags=re.I
    )
    rest = re.sub(r"\b(?:at|on|for|by)\s*(?=$|[,:])", "", rest)
    rest = re.sub(r"\s+(?:at|on|for|by|in the|this)\s*$", "", rest.strip(), flags=re.I)
    notes = _tidy_note(rest.strip(" ,:"))
    notes = re.sub(r"\s+(?:at|on|for|by)$", "", notes)
    if notes:
        slots["notes"] = notes
    return slots


def _complete(text: str, t: str, now: datetime) -> dict[str, Any]:
    m = re.search(
        r"^(?:.*?\b(?:done|finished|complete[d]?|that'?s (?:it|all) for (?:this|the) (?:visit|job|site)|wrap(?:ped)? (?:it |this |things )?up|checked out|check(?:ing)? out|close (?:out )?(?:the |this )?visit|closing (?:out )?(?:the |this )?visit|end(?:ing)? (?:the |this )?visit|close out(?: this visit)?|finish(?:ed)? (?:the |this )?(?:visit|job|service|inspection|repair|work|maintenance|check|installation|install))\b(?: (?:at (?:this|the) (?:customer|site|location|place|client)|with|at|here|for today|(?:the|this) (?:visit|job|site|service|stop|one|inspection|repair|work|maintenance|check|installation|install)|visit|job|site|service|now|notes?|and note|and))*)[\s,:;.-]*(.*)$",
        text,
        flags=re.I,
    )
    if not m:
        return {}
    notes = _tidy_note(m.group(1))
    notes = re.sub(
        r"^(?:here|now|visit|job|this visit|the visit)\b[\s,:;-]*", "", notes, flags=re.I
    )
    notes = _tidy_note(
        re.sub(
            r"^(?:of|from|at) (?:this|the) (?:site|place|visit|location|customer|job)\b",
            "",
            notes,
            flags=re.I,
        )
    )
    return (
        {"notes": notes}
        if notes and notes.casefold() not in ("please", "here", "now", "for today")
        else {}
    )


_SLOTS = {
    "search_records": _search,
    "create_record": _create_record,
    "update_record": _update,
    "log_activity": _log,
    "schedule_meeting": _schedule,
    "report_query": _report,
    "navigate": _navigate,
    "acknowledge_alert": _device,
    "create_work_order": _work_order,
    "set_reminder": _reminder,
    "complete_visit": _complete,
}


def understand(text: str, now: datetime, fallback: Fallback | None = None) -> Understanding:
    """One command -> its intent and slots. `now` is the user's local wall-clock time."""
    cleaned = clean(text)
    low = cleaned.casefold()
    intent = recognise(low)
    by = "rule"
    conf = 1.0
    if intent is None:
        if fallback is not None:
            intent, conf = fallback.predict(low)
            by = "model"
        else:
            intent, conf = "out_of_scope", 0.0
    # Politeness is no part of any slot ("could you update the Polmet deal ...").
    polite = r"^(?:(?:hi|hey|ok(?:ay)?|so|please|yes|yeah|alright)[, ]+|(?:can|could|would|will) you (?:please )?|i(?:'d| would)? (?:want|like|need) (?:you )?to )+"
    cleaned = re.sub(polite, "", cleaned, flags=re.I) or cleaned
    slots = {k: v for k, v in slots_for(intent, cleaned, now).items() if v not in (None, "")}
    # A figure the schema has no metric for ("how many calories ...") is no report; and an
    # intent the trained fallback guessed whose required slots the text does not fill is
    # more likely a request of another kind than that intent: answered as out of scope.
    missing = [k for k in REQUIRED.get(intent, ()) if k not in slots]
    if (intent == "report_query" and missing) or (by == "model" and missing):
        return Understanding("out_of_scope", {}, conf, f"{by}-missing-{'-'.join(missing)}")
    return Understanding(intent, slots, conf, by)


# Slots without which an intent cannot be what was meant (SCHEMA.md's non-optional slots).
REQUIRED: dict[str, tuple[str, ...]] = {
    "search_records": ("entity",),
    "create_record": ("entity", "name"),
    "update_record": ("entity", "name", "field", "value"),
    "log_activity": ("activity_type",),
    "schedule_meeting": ("name", "date"),
    "report_query": ("metric",),
    "navigate": ("screen",),
    "create_work_order": ("name",),
    "set_reminder": ("date",),
}
