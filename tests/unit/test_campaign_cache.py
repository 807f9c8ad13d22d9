"""The actors' per-process campaign cache: hits, expiry after its TTL, invalidation by this process's changes."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.adapters.cached import CachedCampaigns
from shared.adapters.memory import memory_repositories
from shared.domain.models import Campaign, Step
from shared.domain.repositories import CampaignRepository

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class CountingCampaigns:
    """The in-memory campaigns, counting the reads that reach them."""

    def __init__(self) -> None:
        self.inner: CampaignRepository = memory_repositories().campaigns
        self.reads = 0

    def get(self, campaign_id: str) -> Campaign | None:
        self.reads += 1
        return self.inner.get(campaign_id)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class FakeSeconds:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(ttl: float = 30.0) -> tuple[CachedCampaigns, CountingCampaigns, FakeSeconds]:
    inner, seconds = CountingCampaigns(), FakeSeconds()
    cache = CachedCampaigns(inner, ttl=ttl, clock=seconds)  # type: ignore[arg-type]
    assert cache.create(Campaign(id="c1", name="Relance", steps=[Step(delay="0s")]), NOW)
    return cache, inner, seconds


def test_a_campaign_read_again_within_the_ttl_comes_from_the_cache() -> None:
    cache, inner, seconds = _cache()
    first = cache.get("c1")
    seconds.now += 29
    second = cache.get("c1")
    assert first is not None and second is not None and second.id == "c1" and second.steps == first.steps
    assert inner.reads == 1
    second.name = "changed by a caller"
    third = cache.get("c1")
    assert third is not None and third.name == "Relance"  # each caller gets its own copy


def test_a_campaign_is_read_again_once_its_ttl_has_passed() -> None:
    cache, inner, seconds = _cache()
    cache.get("c1")
    seconds.now += 30
    cache.get("c1")
    assert inner.reads == 2
    seconds.now += 10
    cache.get("c1")
    assert inner.reads == 2  # kept again from the second read


def test_this_process_changes_are_read_at_once() -> None:
    cache, inner, _ = _cache()
    before = cache.get("c1")
    assert before is not None and before.status == "active"
    assert cache.set_status("c1", "paused", NOW)
    after = cache.get("c1")
    assert after is not None and after.status == "paused"
    assert inner.reads == 2
    cache.forget()
    cache.get("c1")
    assert inner.reads == 3


def test_a_missing_campaign_is_not_cached_and_lists_are_never_cached() -> None:
    cache, inner, _ = _cache()
    assert cache.get("c2") is None
    inner.inner.create(Campaign(id="c2", name="Autre", steps=[Step(delay="0s")]), NOW)  # another process
    assert cache.get("c2") is not None
    assert [c.id for c in cache.all()] == ["c1", "c2"]
    assert inner.inner.set_status("c2", "paused", NOW)  # another process pauses it
    assert cache.active_ids() == ["c1"]
