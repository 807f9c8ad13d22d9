"""The overview page ``/``: per campaign, the funnel, the amounts due and collected, and 30 days of activity."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.guard import Console
from services.console.web import i18n
from services.console.web.core import CurrentUser, render
from shared.usecases.overview import DAYS, CampaignOverview, Day, campaign_overview

i18n.register({
    "overview.title": ("Vue d'ensemble", "Overview"),
    "overview.none": ("Aucune campagne pour l'instant. Importez vos clients (page Clients) ou vos factures (page "
                      "Factures), puis créez une campagne : relance campaigns create FICHIER (exemple : "
                      "devtools/demo/campaign.yaml) ou POST /api/v1/campaigns.",
                      "No campaign yet. Import your clients (Clients page) or your invoices (Invoices page), then "
                      "create a campaign: relance campaigns create FILE (example: devtools/demo/campaign.yaml) or "
                      "POST /api/v1/campaigns."),
    "overview.started": ("Commencée le {day}", "Started on {day}"),
    "overview.paused": ("en pause", "paused"),
    "overview.active": ("active", "active"),
    "overview.funnel": ("Parcours des clients", "Clients' funnel"),
    "overview.stage": ("Étape", "Stage"),
    "overview.clients": ("Clients", "Clients"),
    "overview.share": ("Part", "Share"),
    "funnel.enrolled": ("Inscrits", "Enrolled"),
    "funnel.sent": ("Message envoyé", "Message sent"),
    "funnel.delivered": ("Reçu", "Delivered"),
    "funnel.read": ("Lu", "Read"),
    "funnel.replied": ("A répondu", "Replied"),
    "funnel.paid": ("A payé", "Paid"),
    "overview.due": ("Reste dû", "Still due"),
    "overview.collected": ("Encaissé depuis le début", "Collected since the start"),
    "overview.nothing": ("rien", "nothing"),
    "overview.chart": ("Les {days} derniers jours", "The last {days} days"),
    "overview.chart_title": ("Messages envoyés et paiements reçus par jour, du {first} au {last}",
                             "Messages sent and payments received per day, from {first} to {last}"),
    "overview.legend_sent": ("messages envoyés", "messages sent"),
    "overview.legend_paid": ("paiements", "payments"),
    "overview.totals": ("{sent} messages envoyés et {paid} paiements sur la période.",
                        "{sent} messages sent and {paid} payments in the period."),
})

FUNNEL = ("enrolled", "sent", "delivered", "read", "replied", "paid")
WIDTH, HEIGHT, TOP, BOTTOM, LEFT = 600, 170, 12, 22, 28


@dataclass(frozen=True)
class Bar:
    """One rectangle of the chart, in SVG units."""

    x: float
    y: float
    width: float
    height: float
    label: str


def chart(days: list[Day], sent_label: str, paid_label: str) -> dict[str, object]:
    """The SVG geometry of the activity chart: a bar per day for messages, a thinner one for payments."""
    peak = max([1, *(d.sent for d in days), *(d.payments for d in days)])
    slot = (WIDTH - LEFT) / max(len(days), 1)
    inner = HEIGHT - TOP - BOTTOM
    sent, paid = [], []
    for n, d in enumerate(days):
        x = LEFT + n * slot
        if d.sent:
            h = inner * d.sent / peak
            sent.append(Bar(round(x + slot * 0.1, 1), round(TOP + inner - h, 1), round(slot * 0.55, 1), round(h, 1),
                            f"{d.day.isoformat()}: {d.sent} {sent_label}"))
        if d.payments:
            h = inner * d.payments / peak
            paid.append(Bar(round(x + slot * 0.55, 1), round(TOP + inner - h, 1), round(slot * 0.35, 1), round(h, 1),
                            f"{d.day.isoformat()}: {d.payments} {paid_label}"))
    return {"width": WIDTH, "height": HEIGHT, "left": LEFT, "top": TOP, "base": TOP + inner, "peak": peak,
            "sent": sent, "paid": paid}


def _funnel_rows(campaign: CampaignOverview) -> list[tuple[str, int, int]]:
    enrolled = campaign.funnel.enrolled
    return [(stage, getattr(campaign.funnel, stage),
             round(100 * getattr(campaign.funnel, stage) / enrolled) if enrolled else 0) for stage in FUNNEL]


def router(console: Console) -> APIRouter:
    """``/``."""
    pages = APIRouter(include_in_schema=False)

    @pages.get("/")
    def overview(request: Request, session: CurrentUser) -> Response:
        lang = i18n.choose(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))
        campaigns = campaign_overview(console.store, now=console.clock.now())
        sent_label = i18n.translate("overview.legend_sent", lang)
        paid_label = i18n.translate("overview.legend_paid", lang)
        shown = [{"campaign": c, "funnel": _funnel_rows(c), "chart": chart(c.days, sent_label, paid_label),
                  "sent_total": sum(d.sent for d in c.days), "paid_total": sum(d.payments for d in c.days)}
                 for c in campaigns]
        return render(request, "overview/index.html", {"campaigns": shown, "days": DAYS})

    return pages
