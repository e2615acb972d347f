"""Moved to `auth_service.identity.supabase`; this name keeps old imports working."""

from auth_service.identity.supabase.adapter import SupabaseIdentityProvider, map_auth_error

__all__ = ["SupabaseIdentityProvider", "map_auth_error"]
