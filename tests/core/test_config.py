from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from pydantic import ValidationError

from auth_service.config import Settings
from auth_service.core.db import async_database_url
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]
STRONG = secrets.token_urlsafe(32)


def test_env_example_lists_exactly_the_settings() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert listed == fields, {
        "missing from .env.example": sorted(fields - listed),
        "unknown to Settings": sorted(listed - fields),
    }


def test_issue_variables_are_settings() -> None:
    required = {
        "SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_JWT_SECRET",
        "M2M_JWT_SECRET_KEY", "AUTH_SERVICE_DATABASE_URL", "REDIS_URL", "ROOT_PATH",
        "CORS_ORIGINS", "LOGGING_LEVEL", "ENVIRONMENT", "INITIAL_ADMIN_EMAIL",
        "INITIAL_ADMIN_PASSWORD",
    }  # fmt: skip
    fields = {name.upper() for name in Settings.model_fields}
    assert required <= fields
    assert any(name.startswith("RATE_LIMIT_") for name in fields)


def test_csv_settings_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


def _production(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "production",
        "auth_service_database_url": "postgresql://u:p@db.example/app",
        "m2m_jwt_secret_key": STRONG,
        "signing_key_encryption_key": secrets.token_urlsafe(32),
        "client_secret_pepper": secrets.token_urlsafe(32),
        "oauth_state_secret": secrets.token_urlsafe(32),
        "token_issuer": "https://auth.example",
        "smtp_host": "smtp.example",
        "redis_url": "rediss://cache.example:6379/0",
    }
    values.update(overrides)
    return make_settings(**values)


def test_production_with_strong_secrets_starts() -> None:
    assert _production().is_production


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"auth_service_database_url": None}, "AUTH_SERVICE_DATABASE_URL must be set"),
        ({"m2m_jwt_secret_key": "dev-m2m-secret-change-me"}, "M2M_JWT_SECRET_KEY must be set"),
        ({"m2m_jwt_secret_key": ""}, "M2M_JWT_SECRET_KEY must be set"),
        ({"m2m_jwt_secret_key": "short"}, "M2M_JWT_SECRET_KEY must be at least 32"),
        ({"client_secret_pepper": "changeme"}, "CLIENT_SECRET_PEPPER must be set"),
        ({"signing_key_encryption_key": "secret"}, "SIGNING_KEY_ENCRYPTION_KEY must be set"),
        ({"oauth_state_secret": ""}, "OAUTH_STATE_SECRET must be set"),
        ({"cors_origins": ["*"]}, "CORS_ORIGINS must not contain '*'"),
        ({"token_issuer": "http://auth.example"}, "TOKEN_ISSUER must be an https"),
        ({"token_issuer": "HTTP://auth.example"}, "TOKEN_ISSUER must be an https"),
        ({"token_issuer": "ftp://auth.example"}, "TOKEN_ISSUER must be an https"),
        (
            {"supabase_url": "HTTP://p.supabase.co", "supabase_anon_key": STRONG + "a"},
            "SUPABASE_URL must be an https",
        ),
        ({"cors_origins": ["null"]}, "CORS_ORIGINS must list only https://"),
        (
            {"cors_origins": ["https://a.example", "http://b.example"]},
            "CORS_ORIGINS must list only https://",
        ),
        ({"supabase_jwt_secret": "short-secret"}, "SUPABASE_JWT_SECRET must be at least 32 bytes"),
        ({"supabase_jwt_secret": "ab" * 20}, "SUPABASE_JWT_SECRET must be random"),
        ({"m2m_jwt_secret_key": "x" * 40}, "M2M_JWT_SECRET_KEY must be random"),
        (
            {"client_secret_pepper": STRONG},
            "CLIENT_SECRET_PEPPER must differ from M2M_JWT_SECRET_KEY",
        ),
        ({"redis_url": None}, "REDIS_URL must be set"),
        ({"rate_limit_enabled": False}, "RATE_LIMIT_ENABLED must be true"),
        (
            {"supabase_url": "https://p.supabase.co", "supabase_anon_key": ""},
            "SUPABASE_ANON_KEY must be set",
        ),
        ({"smtp_host": None}, "SMTP_HOST must be set in production with IDENTITY_PROVIDER=local"),
        ({"password_required_characters": ["emoji"]}, "use lower,upper,digit,symbol"),
    ],
)
def test_production_refuses_insecure_values(override: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        _production(**override)
    assert message in str(excinfo.value)
    # The message names the setting and the rule, never the value.
    for value in override.values():
        if isinstance(value, str) and len(value) >= 8 and "://" not in value:
            assert value not in str(excinfo.value)


def test_production_defaults_turn_docs_off_and_keep_them_overridable() -> None:
    assert _production().docs_enabled is False
    assert _production(docs_enabled=True).docs_enabled is True
    assert make_settings().docs_enabled is True


def test_a_refused_secret_is_never_echoed() -> None:
    leaked = "Zq8-unique-but-short"
    with pytest.raises(ValidationError) as excinfo:
        _production(m2m_jwt_secret_key=leaked, client_secret_pepper=leaked + "x" * 20)
    assert leaked not in str(excinfo.value)
    assert "M2M_JWT_SECRET_KEY must be at least 32" in str(excinfo.value)


def test_production_lists_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as excinfo:
        make_settings(environment="production", auth_service_database_url=None)
    text = str(excinfo.value)
    for name in ("AUTH_SERVICE_DATABASE_URL", "M2M_JWT_SECRET_KEY", "CLIENT_SECRET_PEPPER"):
        assert name in text


def test_development_accepts_defaults() -> None:
    assert make_settings(environment="development").m2m_jwt_secret_key.get_secret_value()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+asyncpg://u:p@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql://u@h/d?sslmode=require", "postgresql+asyncpg://u@h/d?ssl=require"),
    ],
)
def test_database_urls_are_normalised_for_asyncpg(given: str, expected: str) -> None:
    assert async_database_url(given) == expected


def test_configuration_problems_name_the_setting_and_rule_never_the_value() -> None:
    from auth_service.config import configuration_problems

    with pytest.raises(ValidationError) as excinfo:
        make_settings(port="p0rt-value", m2m_signing_algorithm="none-such")
    problems = configuration_problems(excinfo.value)
    assert problems[0].startswith("PORT: Input should be a valid integer")
    assert problems[1].startswith("M2M_SIGNING_ALGORITHM: Input should be 'ES256' or 'HS256'")
    assert "p0rt-value" not in " ".join(problems)
    with pytest.raises(ValidationError) as excinfo:
        _production(m2m_jwt_secret_key="short-Secret-1", token_issuer=None)
    problems = configuration_problems(excinfo.value)
    assert problems == [
        "M2M_JWT_SECRET_KEY must be at least 32 characters in production",
        "TOKEN_ISSUER must be set in production (the public https URL)",
    ]


def test_log_format_defaults_to_console_only_in_development() -> None:
    assert make_settings(environment="development").effective_log_format == "console"
    assert make_settings(environment="staging").effective_log_format == "json"
    assert make_settings(environment="development", log_format="json").effective_log_format == (
        "json"
    )


def test_identity_provider_defaults_to_supabase_only_when_it_is_configured() -> None:
    assert make_settings().active_identity_provider.value == "local"
    supabase = make_settings(supabase_url="https://p.supabase.co")
    assert supabase.active_identity_provider.value == "supabase"
    forced = make_settings(supabase_url="https://p.supabase.co", identity_provider="local")
    assert forced.active_identity_provider.value == "local"


def test_production_with_supabase_needs_no_smtp() -> None:
    settings = _production(
        smtp_host=None,
        supabase_url="https://p.supabase.co",
        supabase_anon_key="anon-" + STRONG,
        supabase_service_role_key="service-" + STRONG,
    )
    assert settings.active_identity_provider.value == "supabase"


def test_autoconfirm_is_on_in_development_and_off_in_production() -> None:
    assert make_settings(environment="development").autoconfirm
    assert not _production().autoconfirm
    assert not _production(local_autoconfirm=False).autoconfirm


def test_a_malformed_oidc_providers_setting_is_refused_at_startup() -> None:
    with pytest.raises(ValidationError) as excinfo:
        make_settings(oidc_providers='[{"name": "x"}]')
    assert "oidc_providers" in str(excinfo.value)
