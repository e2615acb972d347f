"""Durable revocations: PostgreSQL is the source of truth, Redis (or memory) the cache."""

from auth_service.revocation.service import RevocationStore

__all__ = ["RevocationStore"]
