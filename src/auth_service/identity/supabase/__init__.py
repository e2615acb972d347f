"""The Supabase Auth (GoTrue) adapter of the identity port."""

from auth_service.identity.supabase.adapter import SupabaseIdentityProvider, map_auth_error

__all__ = ["SupabaseIdentityProvider", "map_auth_error"]
