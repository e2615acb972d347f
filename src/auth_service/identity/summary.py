"""What the startup summary says about the identity provider."""

from __future__ import annotations

from auth_service.config import IdentityProviderName, Settings


def describe_identity_provider(settings: Settings) -> str:
    """The provider human sign-in goes to, in a few words (no keys)."""
    if settings.active_identity_provider is IdentityProviderName.LOCAL:
        return "local (users in this database; docs/identity-local.md)"
    if settings.supabase_configured:
        return f"supabase ({settings.supabase_url})"
    return "supabase, not configured (set SUPABASE_URL and SUPABASE_ANON_KEY; see docs/supabase.md)"
