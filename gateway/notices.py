"""Adverse-action notices: the principal reasons of a decline or referral, for the applicant.

One notice, two renderings from the same facts: HTML from a Jinja2 template in the
config folder (autoescaped: a value from a request can never become markup), and PDF
laid out with fpdf2. The lender, a contact line, the template and the applicant's
rights statement come from the ``notices`` section of the configuration; everything
is loaded and test-rendered at start, so a broken template refuses to start.

A notice exists for a decided referral or decline. A referral that a reviewer approved
has none (no adverse action was taken); one a reviewer declined is a decline, dated
by the review.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import structlog
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from gateway.config import validate
from gateway.errors import ConfigError
from gateway.reviews import ReviewRecord

log = structlog.get_logger(__name__)

#: Settings of the ``notices`` config section, and their defaults.
DEFAULTS: dict[str, Any] = {
    "lender": "loangate demo lender",
    "contact": "",
    "template": "notices/adverse-action.html.j2",
    "rights_statement": "notices/rights-statement.txt",
    "pdf_font": None,
}
NOTICES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "lender": {"type": "string", "minLength": 1, "maxLength": 200},
        "contact": {"type": "string", "maxLength": 500},
        "template": {"type": "string", "description": "Jinja2 HTML template, in config/"},
        "rights_statement": {"type": "string", "description": "text file, in config/"},
        "pdf_font": {
            "type": ["string", "null"],
            "description": "a TrueType font to embed (full Unicode); null: Helvetica, cp1252",
        },
    },
}
TITLE = "Notice of action taken on your credit application"
_CORE_ENCODING = "windows-1252"


@dataclass(frozen=True)
class Notice:
    """The facts a notice states."""

    decision_id: str
    application_id: str | None
    decision_date: str
    final_outcome: str  # refer | decline
    reviewed: bool
    reasons: tuple[tuple[str, str], ...]  # (code, text)

    @property
    def action(self) -> str:
        if self.final_outcome == "refer":
            return (
                "We could not approve your application automatically. It has been referred "
                "to one of our credit officers, who will contact you with a final decision."
            )
        if self.reviewed:
            return "After review by one of our credit officers, we have declined your application."
        return "We have declined your application."


def notice_for(document: Mapping[str, Any], review: ReviewRecord | None) -> Notice | None:
    """The notice owed for a decision document, or ``None`` when there is none."""
    if document.get("status") != "decided" or document.get("outcome") not in ("refer", "decline"):
        return None
    outcome, day = document["outcome"], document["decided_at"][:10]
    if review is not None:
        if review.final_outcome == "approve":
            return None
        outcome, day = review.final_outcome, review.reviewed_at.date().isoformat()
    reasons = tuple((r["code"], r["text"]) for r in document.get("reason_codes") or ())
    return Notice(
        decision_id=document["decision_id"],
        application_id=document.get("application_id"),
        decision_date=day,
        final_outcome=outcome,
        reviewed=review is not None,
        reasons=reasons,
    )


def _printable(text: str) -> str:
    """``text`` without control characters (a caller's id could carry any)."""
    return "".join(c for c in text if unicodedata.category(c) != "Cc" or c == "\n")


class NoticeRenderer:
    """Renders notices as HTML and PDF with the configured lender, template and rights."""

    def __init__(self, settings: Mapping[str, Any] | None, config_dir: Path) -> None:
        validate(settings or {}, NOTICES_SCHEMA, where="notices")
        merged = {**DEFAULTS, **(settings or {})}
        self.lender: str = merged["lender"]
        self.contact: str = merged["contact"]
        template = config_dir / merged["template"]
        rights = config_dir / merged["rights_statement"]
        try:
            text = rights.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"notices.rights_statement: cannot read {rights}") from exc
        self.rights = tuple(p.strip() for p in text.split("\n\n") if p.strip())
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(template.parent),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        try:
            self.template = env.get_template(template.name)
        except jinja2.TemplateNotFound:
            raise ConfigError(f"notices.template: no template at {template}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"notices.template: {template.name}:{exc.lineno}: {exc}") from None
        font = merged["pdf_font"]
        self.font: Path | None = (config_dir / font) if font else None
        if self.font is not None and not self.font.is_file():
            raise ConfigError(f"notices.pdf_font: no font file at {self.font}")
        if self.font is None:
            for key, value in (("lender", self.lender), ("contact", self.contact)):
                try:
                    value.encode(_CORE_ENCODING)
                except UnicodeEncodeError:
                    raise ConfigError(
                        f"notices.{key}: characters outside {_CORE_ENCODING}; set notices.pdf_font"
                    ) from None
        sample = Notice("01J00000000000000000000000", "sample", "2026-01-01", "decline", False, ())
        try:  # render once now: a template that fails would otherwise fail per request
            self.html(sample)
            self.pdf(sample)
        except jinja2.TemplateError as exc:
            raise ConfigError(f"notices.template: {template.name}: {exc}") from None

    def html(self, notice: Notice) -> str:
        """The notice as an HTML page (every value escaped)."""
        return self.template.render(
            lender=self.lender,
            contact=self.contact,
            title=TITLE,
            decision_id=notice.decision_id,
            application_id=notice.application_id,
            decision_date=notice.decision_date,
            action=notice.action,
            reasons=[{"code": code, "text": text} for code, text in notice.reasons],
            rights=self.rights,
        )

    def pdf(self, notice: Notice) -> bytes:
        """The notice as a PDF document."""
        pdf = _NoticePdf(self.font)
        stamp = datetime.fromisoformat(notice.decision_date).replace(tzinfo=UTC)
        pdf.set_creation_date(stamp)  # the same notice renders to the same bytes
        pdf.set_title(f"{TITLE} ({notice.decision_id})")
        pdf.set_author(pdf.clean(self.lender))
        pdf.add_page()
        pdf.heading(self.lender, 13)
        if self.contact:
            pdf.paragraph(self.contact)
        pdf.ln(4)
        pdf.heading(TITLE, 15)
        pdf.paragraph(f"Date: {notice.decision_date}")
        pdf.paragraph(f"Decision reference: {notice.decision_id}")
        if notice.application_id:
            pdf.paragraph(f"Application reference: {notice.application_id}")
        pdf.ln(3)
        pdf.paragraph(notice.action)
        pdf.ln(3)
        pdf.heading("Principal reasons", 12)
        if not notice.reasons:
            pdf.paragraph("No specific reason was recorded; you may ask us for the reasons.")
        for i, (code, text) in enumerate(notice.reasons, 1):
            pdf.paragraph(f"{i}. {text} ({code})")
        pdf.ln(3)
        pdf.heading("Your rights", 12)
        for paragraph in self.rights:
            pdf.paragraph(paragraph)
            pdf.ln(2)
        return bytes(pdf.output())


class _NoticePdf(FPDF):
    """An A4 page with a heading and paragraph style, in a core or embedded font."""

    def __init__(self, font: Path | None) -> None:
        super().__init__(format="A4")
        self.set_margins(20, 20, 20)
        self.set_auto_page_break(True, margin=20)
        if font is None:
            self.core_fonts_encoding = _CORE_ENCODING
            self.notice_family, self.notice_bold = "helvetica", "B"
        else:
            self.add_font("notice", "", str(font))
            self.notice_family, self.notice_bold = "notice", ""
        self.notice_embedded = font is not None

    def clean(self, text: str) -> str:
        """``text`` printable in the font: a core font replaces what it cannot show."""
        text = _printable(text)
        if self.notice_embedded:
            return text
        encoded = text.encode(_CORE_ENCODING, errors="replace")
        if b"?" in encoded and "?" not in text:
            log.warning("notice_characters_replaced", hint="set notices.pdf_font")
        return encoded.decode(_CORE_ENCODING)

    def heading(self, text: str, size: float) -> None:
        self.set_font(self.notice_family, self.notice_bold, size)
        self.multi_cell(0, size * 0.55, self.clean(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1)

    def paragraph(self, text: str) -> None:
        self.set_font(self.notice_family, "", 10.5)
        self.multi_cell(0, 5.5, self.clean(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
