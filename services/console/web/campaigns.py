"""The campaigns page ``/campaigns``: each campaign's progress, pause/resume, enrol, and the steps planned
to go out in the next 24 hours (client, step, planned time in the client's timezone)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.guard import Console
from services.console.web import i18n
from services.console.web.core import CheckedForm, CurrentUser, language, render
from services.console.web.refusals import refusal
from shared.errors import InputError
from shared.usecases.campaigns import campaigns_progress, enrol_campaign, pause_campaign, resume_campaign
from shared.usecases.upcoming import HORIZON, upcoming_sends

i18n.register({
    "campaigns.title": ("Campagnes", "Campaigns"),
    "campaigns.none": ("Aucune campagne pour l'instant : créez-en une avec relance campaigns create FICHIER "
                       "(exemple : devtools/demo/campaign.yaml) ou POST /api/v1/campaigns ; elle apparaîtra ici, "
                       "avec ses boutons pause et inscrire.",
                       "No campaign yet: create one with relance campaigns create FILE (example: "
                       "devtools/demo/campaign.yaml) or POST /api/v1/campaigns; it shows here, with its pause and "
                       "enrol buttons."),
    "campaigns.active": ("active", "active"),
    "campaigns.paused": ("en pause", "paused"),
    "campaigns.steps": ("{count} étape(s)", "{count} step(s)"),
    "campaigns.enrolled": ("{count} client(s) inscrit(s)", "{count} client(s) enrolled"),
    "campaigns.person": ("{count} attend(ent) une personne", "{count} need(s) a person"),
    "campaigns.state": ("État", "State"),
    "campaigns.count": ("Relances", "Follow-ups"),
    "campaigns.pause": ("Mettre en pause", "Pause"),
    "campaigns.resume": ("Reprendre", "Resume"),
    "campaigns.enrol": ("Inscrire les clients sélectionnés", "Enrol the selected clients"),
    "campaigns.enrol_tags": ("Seulement avec ces étiquettes (séparées par des virgules, facultatif)",
                             "Only with these tags (comma-separated, optional)"),
    "campaigns.paused_done": ("Campagne {id} en pause ({count} relance(s) suspendue(s)).",
                              "Campaign {id} paused ({count} follow-up(s) paused)."),
    "campaigns.resumed_done": ("Campagne {id} reprise ({count} relance(s) reprogrammée(s)).",
                               "Campaign {id} resumed ({count} follow-up(s) rescheduled)."),
    "campaigns.unchanged": ("Campagne {id} : déjà {status}.", "Campaign {id}: already {status}."),
    "campaigns.enrol_done": ("Campagne {id} : {enrolled} inscrit(s), {already} déjà inscrit(s), {skipped} écarté(s).",
                             "Campaign {id}: {enrolled} enrolled, {already} already enrolled, {skipped} skipped."),
    "upcoming.title": ("Ce qui partira dans les {hours} prochaines heures", "What goes out in the next {hours} hours"),
    "upcoming.explain": ("Heures prévues, pas promises : la date d'échéance de chaque étape, placée dans la plage "
                         "d'envoi de la campagne (heure du client, jours fériés exclus) et après l'espacement entre "
                         "deux messages d'un même client et son plafond par jour. Une réponse, un paiement ou une "
                         "pause peut encore l'annuler ou la décaler.",
                         "Planned times, not promises: each step's due time, moved into the campaign's send window "
                         "(the client's time, public holidays skipped) and after the gap between two messages to "
                         "one client and its daily cap. A reply, a payment or a pause may still cancel or move it."),
    "upcoming.none": ("Rien de prévu dans les {hours} prochaines heures.",
                      "Nothing planned in the next {hours} hours."),
    "upcoming.when": ("Heure prévue (client)", "Planned time (client's)"),
    "upcoming.client": ("Client", "Client"),
    "upcoming.campaign": ("Campagne", "Campaign"),
    "upcoming.step": ("Étape", "Step"),
    "upcoming.moved.window": ("décalé dans la plage d'envoi", "moved into the send window"),
    "upcoming.moved.pacing": ("décalé par l'espacement", "moved by pacing"),
    "upcoming.drafted": ("rédigé", "drafted"),
})


def _page(request: Request, console: Console, *, status_code: int = 200, **extra: Any) -> Response:
    store, now = console.store, console.clock.now()
    campaigns = campaigns_progress(store)
    planned = upcoming_sends(store, console.rules, now=now)
    return render(request, "campaigns/index.html", {
        "campaigns": campaigns, "planned": planned, "hours": int(HORIZON.total_seconds() // 3600), **extra},
        status=status_code)


def router(console: Console) -> APIRouter:
    """``/campaigns`` and its pause, resume and enrol forms."""
    pages = APIRouter(include_in_schema=False)
    store = console.store

    @pages.get("/campaigns")
    def campaigns(request: Request, session: CurrentUser) -> Response:
        return _page(request, console)

    @pages.post("/campaigns/{campaign_id}/{action}")
    def act(campaign_id: str, action: str, request: Request, session: CurrentUser, form: CheckedForm) -> Response:
        lang, by, now = language(request), f"user:{session.email}", console.clock.now()
        try:
            if action == "pause":
                change = pause_campaign(store, campaign_id, now=now, by=by)
                key, count = "campaigns.paused_done", change.paused
            elif action == "resume":
                change = resume_campaign(store, campaign_id, now=now, by=by)
                key, count = "campaigns.resumed_done", change.resumed
            elif action == "enrol":
                tags = [tag.strip() for tag in str(form.get("tags") or "").split(",") if tag.strip()]
                report = enrol_campaign(store, campaign_id, now=now, tags=tags or None, by=by)
                notice = i18n.translate("campaigns.enrol_done", lang, id=campaign_id, enrolled=report.enrolled,
                                        already=report.already_enrolled, skipped=len(report.skipped))
                return _page(request, console, notice=notice, skipped=report.skipped)
            else:
                raise InputError(f"no action {action!r} on a campaign (pause, resume or enrol)")
        except InputError as exc:
            return _page(request, console, error=refusal(exc, language(request)), status_code=400)
        if not change.changed:
            status = i18n.translate(f"campaigns.{change.status}", lang)
            return _page(request, console, notice=i18n.translate("campaigns.unchanged", lang, id=campaign_id,
                                                                 status=status))
        return _page(request, console, notice=i18n.translate(key, lang, id=campaign_id, count=count))

    return pages
