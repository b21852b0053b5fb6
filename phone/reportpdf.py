"""The service report as a PDF (reportlab), pure: facts in, bytes out, no I/O.

Deterministic for the same facts (fixed creation date and document id), so the hash
anchored in the ledger is the hash of exactly what the customer receives.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle


@dataclass(frozen=True, slots=True)
class ReportFacts:
    report_id: int
    company: str
    account: str
    address: str | None
    work_order_id: int
    title: str
    description: str | None
    rep: str
    checkin_at: datetime | None
    checkout_at: datetime | None
    checklist: list[tuple[str, bool]]
    parts: list[tuple[str, float]]
    notes: list[str]
    photos: list[bytes] = field(default_factory=list)  # JPEG thumbnails
    signature_png: bytes = b""
    signer_name: str = ""
    signed_at: datetime | None = None


def _t(d: datetime | None) -> str:
    return d.strftime("%Y-%m-%d %H:%M UTC") if d else "-"


def build_pdf(f: ReportFacts) -> bytes:
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        title=f"Service report {f.report_id}",
        author=f.company,
        invariant=1,  # no random document id or current date: the same facts, the same bytes
    )
    st = getSampleStyleSheet()
    p = lambda text, style="BodyText": Paragraph(escape(text), st[style])  # noqa: E731
    spent = "-"
    if f.checkin_at and f.checkout_at and f.checkout_at >= f.checkin_at:
        spent = f"{round((f.checkout_at - f.checkin_at).total_seconds() / 60)} min"
    story = [
        p(f"Service report #{f.report_id}", "Title"),
        p(f"{f.account}" + (f" - {f.address}" if f.address else "")),
        p(f"Work order #{f.work_order_id}: {f.title}", "Heading2"),
    ]
    if f.description:
        story.append(p(f.description))
    times = Table(
        [
            ["Technician", f.rep],
            ["Arrived", _t(f.checkin_at)],
            ["Left", _t(f.checkout_at)],
            ["Time on site", spent],
        ],
        colWidths=[40 * mm, 120 * mm],
    )
    times.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.grey)]))
    story += [Spacer(1, 4 * mm), times, p("Work done", "Heading2")]
    story += [p(f"[{'x' if done else ' '}] {item}") for item, done in f.checklist] or [p("-")]
    story += [p(n) for n in f.notes]
    story.append(p("Parts used", "Heading2"))
    if f.parts:
        parts = Table(
            [["Part", "Qty"], *[[n, f"{q:g}"] for n, q in f.parts]], colWidths=[130 * mm, 30 * mm]
        )
        parts.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.grey)]))
        story.append(parts)
    else:
        story.append(p("none"))
    if f.photos:
        story.append(p("Photos", "Heading2"))
        imgs = [
            Image(io.BytesIO(ph), width=40 * mm, height=30 * mm, kind="proportional")
            for ph in f.photos[:8]
        ]
        story.append(Table([imgs[i : i + 4] for i in range(0, len(imgs), 4)]))
    story += [p("Customer signature", "Heading2")]
    if f.signature_png:
        story.append(
            Image(io.BytesIO(f.signature_png), width=70 * mm, height=17 * mm, kind="proportional")
        )
    story.append(p(f"Signed by {f.signer_name} on {_t(f.signed_at)}"))
    story.append(
        p(
            "This report's SHA-256 is anchored in fieldmesh's public ledger with the "
            "technician's and the device's signatures: `fieldmesh verify RECEIPT --document "
            "THIS.pdf` checks it.",
            "Italic",
        )
    )
    doc.build(story)
    return out.getvalue()
