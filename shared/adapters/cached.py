"""A per-process cache of campaigns for the actors, which read one (steps, window, templates) per message.

A campaign's steps, window and templates never change once it is created; only its status does,
and no actor decides anything from the status: pausing a campaign pauses its follow-ups and
cancels its drafted steps (:func:`shared.usecases.campaigns.pause_campaign`), which the actors
read fresh. So a campaign
read a few seconds ago is as good as a new read, and :class:`CachedCampaigns` keeps each one
for ``ttl`` seconds. What this process changes through it (create, status) is forgotten at once.
Lists (``all``, ``active_ids``: the scheduler's claim filter) are never cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from shared.domain.models import Campaign
from shared.domain.repositories import CampaignRepository

# How long a campaign read is reused (seconds).
CAMPAIGN_TTL = 30.0


class CachedCampaigns:
    """A :class:`~shared.domain.repositories.CampaignRepository` that keeps each campaign read for ``ttl`` seconds.

    ``clock`` gives monotonic seconds (tests pass a fake). Thread-safe: the actors of a worker
    process share it. A missing campaign is not cached (it may be created in a moment).
    """

    def __init__(self, inner: CampaignRepository, *, ttl: float = CAMPAIGN_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.ttl = ttl
        self.clock = clock
        self._kept: dict[str, tuple[float, Campaign]] = {}
        self._lock = threading.Lock()

    def get(self, campaign_id: str) -> Campaign | None:
        """The campaign, from the cache while it is younger than ``ttl``."""
        now = self.clock()
        with self._lock:
            kept = self._kept.get(campaign_id)
        if kept is not None and now - kept[0] < self.ttl:
            return kept[1].model_copy(deep=True)  # callers may not change what others read
        campaign = self.inner.get(campaign_id)
        with self._lock:
            if campaign is None:
                self._kept.pop(campaign_id, None)
            else:
                self._kept[campaign_id] = (now, campaign.model_copy(deep=True))
        return campaign

    def forget(self, campaign_id: str | None = None) -> None:
        """Drop one campaign (None: every campaign) from the cache."""
        with self._lock:
            if campaign_id is None:
                self._kept.clear()
            else:
                self._kept.pop(campaign_id, None)

    def create(self, campaign: Campaign, now: datetime) -> bool:
        """See :class:`~shared.domain.repositories.CampaignRepository`."""
        try:
            return self.inner.create(campaign, now)
        finally:
            self.forget(campaign.id)

    def all(self) -> list[Campaign]:
        """See :class:`~shared.domain.repositories.CampaignRepository` (never cached)."""
        return self.inner.all()

    def set_status(self, campaign_id: str, status: Literal["active", "paused"], now: datetime) -> bool:
        """See :class:`~shared.domain.repositories.CampaignRepository`; this process reads the change at once."""
        try:
            return self.inner.set_status(campaign_id, status, now)
        finally:
            self.forget(campaign_id)

    def active_ids(self) -> list[str]:
        """See :class:`~shared.domain.repositories.CampaignRepository` (never cached)."""
        return self.inner.active_ids()
