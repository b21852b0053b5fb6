"""A report's result as e-mail attachments (pure: result in, files out): XLSX and CSV as
the console exports them (`crm.report_routes`), PDF as a table (reportlab)."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from automation.channels import Attachment
from crm.reports import ReportResult

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF_MAX_ROWS = 1000  # the report's own limit; a PDF shows them all


def _stem(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:80].strip("-")
    return safe or "report"


def result_pdf(result: ReportResult, title: str) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), title=title, invariant=1)
    st = getSampleStyleSheet()
    cell = st["BodyText"]

    def p(v: object) -> Paragraph:
        return Paragraph(escape("" if v is None else str(v)), cell)

    data = [[p(c.label) for c in result.columns]]
    data += [[p(v) for v in row] for row in result.rows[:PDF_MAX_ROWS]]
    table = Table(data, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story = [Paragraph(escape(title), st["Title"]), Spacer(1, 6), table]
    if result.truncated:
        story.append(Paragraph("(more rows than the report's limit)", cell))
    doc.build(story)
    return out.getvalue()


def render_files(result: ReportResult, name: str, formats: list[str]) -> tuple[Attachment, ...]:
    from crm.report_routes import result_csv, result_xlsx

    stem = _stem(name)
    files = []
    for f in formats:
        if f == "xlsx":
            files.append(Attachment(f"{stem}.xlsx", XLSX, result_xlsx(result, name)))
        elif f == "csv":
            files.append(Attachment(f"{stem}.csv", "text/csv", result_csv(result)))
        elif f == "pdf":
            files.append(Attachment(f"{stem}.pdf", "application/pdf", result_pdf(result, name)))
    return tuple(files)
