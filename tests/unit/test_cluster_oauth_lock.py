"""Which tokens another replica refreshed a replica takes instead of refreshing itself."""

from __future__ import annotations

from mcpmux.cluster.oauth_lock import SHARED_MIN_SECONDS, adoptable

NOW = 1_000_000.0


def test_new_tokens_from_another_replica_are_taken() -> None:
    assert adoptable({"access_token": "new", "expires_at": NOW + 300}, "old", NOW)
    assert adoptable({"access_token": "new"}, None, NOW)  # no expiry: valid until rejected


def test_our_own_stale_token_nothing_or_an_expiring_one_is_not_taken() -> None:
    assert not adoptable(None, "old", NOW)
    assert not adoptable({}, "old", NOW)
    assert not adoptable({"access_token": "old", "expires_at": NOW + 300}, "old", NOW)
    assert not adoptable({"access_token": "new", "expires_at": NOW + SHARED_MIN_SECONDS - 1}, "old", NOW)
