"""Service settings. Every variable the service reads is a field here and a line in .env.example."""

from __future__ import annotations

import math
from collections import Counter
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Values that must never reach production: the defaults below and well-known placeholders.
INSECURE_SECRET_VALUES = frozenset(
    {
        "",
        "change-me",
        "changeme",
        "secret",
        "dev-m2m-secret-change-me",
        "dev-signing-key-encryption-key-change-me",
        "dev-client-secret-pepper-change-me",
        "dev-oauth-state-secret-change-me",
        "super-secret-jwt-token-with-at-least-32-characters-long",
    }
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class IdentityProviderName(StrEnum):
    LOCAL = "local"
    SUPABASE = "supabase"


class SigningAlgorithm(StrEnum):
    ES256 = "ES256"
    HS256 = "HS256"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


_PRIVATE_NETWORKS = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)

# Settings whose default is stricter in production (an empty value means "the default").
_PRODUCTION_DEFAULTS: dict[str, Any] = {"admin_require_mfa": True, "docs_enabled": False}


class Settings(BaseSettings):
    """Configuration from the environment (and `.env`), validated at startup."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # A refused setting is named, its value never echoed (it may be a secret).
        hide_input_in_errors=True,
    )

    # --- runtime -------------------------------------------------------------------------
    environment: Environment = Environment.DEVELOPMENT
    logging_level: str = "INFO"
    root_path: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    cors_origins: CsvList = Field(default_factory=list)
    trust_forwarded_for: bool = False

    # --- storage -------------------------------------------------------------------------
    auth_service_database_url: str | None = None
    database_pool_size: int = 10
    database_max_overflow: int = 10
    embedded_postgres_data_dir: str = ".data/postgres"
    redis_url: str | None = None
    redis_key_prefix: str = "auth_service:"

    # --- machine tokens ------------------------------------------------------------------
    m2m_jwt_secret_key: SecretStr = SecretStr("dev-m2m-secret-change-me")
    m2m_signing_algorithm: SigningAlgorithm = SigningAlgorithm.ES256
    signing_key_encryption_key: SecretStr = SecretStr("dev-signing-key-encryption-key-change-me")
    signing_keys_refresh_seconds: int = 10
    client_secret_pepper: SecretStr = SecretStr("dev-client-secret-pepper-change-me")
    client_secret_rotation_grace_seconds: int = 86_400
    access_token_ttl_seconds: int = 900
    # Unset: derived from the host, port and ROOT_PATH actually served (development only).
    token_issuer: str | None = None
    default_audience: str = "auth-service"
    client_cache_ttl_seconds: int = 30

    # --- issue 11: client assertions (RFC 7523), DPoP (RFC 9449), token exchange (RFC 8693) ---
    client_assertion_max_lifetime_seconds: int = 3600
    client_assertion_leeway_seconds: int = 30
    client_jwks_timeout_seconds: float = 5.0
    client_jwks_cache_seconds: int = 300
    client_jwks_min_refetch_seconds: float = 10.0
    dpop_iat_window_seconds: int = 60
    dpop_nonce_required: bool = False
    dpop_nonce_lifetime_seconds: int = 300

    # --- Supabase Auth -------------------------------------------------------------------
    supabase_url: str | None = None
    supabase_anon_key: SecretStr | None = None
    supabase_service_role_key: SecretStr | None = None
    supabase_jwt_secret: SecretStr | None = None
    supabase_timeout_seconds: float = 10.0
    supabase_forward_client_ip: bool = False
    supabase_jwks_cache_seconds: int = 600
    supabase_jwks_min_refetch_seconds: float = 30.0
    magic_link_create_user: bool = False
    oauth_redirect_allow_list: CsvList = Field(default_factory=list)
    oauth_state_secret: SecretStr = SecretStr("dev-oauth-state-secret-change-me")
    oauth_state_ttl_seconds: int = 600

    # --- local identity provider (issue 8) ---------------------------------------------
    identity_provider: IdentityProviderName | None = None
    local_autoconfirm: bool | None = None
    local_site_url: str = "http://127.0.0.1:3000"
    password_min_length: int = 8
    password_required_characters: CsvList = Field(default_factory=list)
    password_breached_list_path: str | None = None
    password_hash_memory_kib: int = 19_456
    password_hash_time_cost: int = 2
    password_hash_parallelism: int = 1
    refresh_token_reuse_interval_seconds: int = 10
    email_token_ttl_seconds: int = 3600
    email_token_max_attempts: int = 5
    mfa_challenge_ttl_seconds: int = 300
    login_lockout_threshold: int = 5
    login_lockout_max_failures_per_hour: int = 100
    # How often expired OAuth flows, email tokens and MFA challenges are deleted (bounded batches).
    local_prune_interval_seconds: float = Field(default=300.0, gt=0)
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "auth-service@localhost"
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = 10.0
    # CA certificates (PEM) the SMTP server's certificate must chain to. Unset: system store.
    smtp_ca_file: str | None = None
    oidc_providers: str | None = None

    # --- rate limits (slowapi / limits syntax) -------------------------------------------
    rate_limit_enabled: bool = True
    rate_limit_default: str = "600/minute"
    rate_limit_token: str = "1200/minute"
    rate_limit_login: str = "10/minute"
    rate_limit_register: str = "5/minute"
    rate_limit_password_reset: str = "5/minute"

    # --- first hour (issue 13) ------------------------------------------------------------
    # console: readable lines and a startup summary; json: one object per line. Unset:
    # console in development, json elsewhere.
    log_format: LogFormat | None = None

    # --- resilience under load and faults (issue 12) ------------------------------------
    database_pool_timeout_seconds: float = 3.0
    database_connect_timeout_seconds: float = 3.0
    database_statement_timeout_seconds: float = 5.0
    redis_pool_size: int = 64
    redis_pool_timeout_seconds: float = 0.5
    redis_socket_timeout_seconds: float = 1.0
    retry_after_seconds: int = 2
    max_requests_in_flight: int = 100
    # A second port for kubelet probes (/health, /ready), served by its own thread so they
    # never queue behind an overloaded event loop; 0 = off. /health there turns 503 when the
    # loop has not run for PROBE_STALL_SECONDS (blocked), /ready when its last check is older.
    probe_port: int = 0
    probe_stall_seconds: float = 10.0

    # --- bootstrap -----------------------------------------------------------------------
    initial_admin_email: str | None = None
    initial_admin_password: SecretStr | None = None

    # --- security hardening (issue 9) ----------------------------------------------------
    # Every human admin needs MFA (an aal2 session). Unset: true in production, else false.
    admin_require_mfa: bool = False
    admin_mfa_factor_cache_seconds: float = 30.0
    # Proxies whose X-Forwarded-For is believed (IPs or CIDRs, comma-separated; empty: none).
    # The client IP is the right-most X-Forwarded-For entry not in this list.
    trusted_proxies: CsvList = Field(default_factory=list)
    # Per-token (refresh) and per-factor/per-user (MFA verify) limits, besides per IP.
    rate_limit_refresh: str = "60/minute"
    rate_limit_mfa_verify: str = "5/minute"
    # Input bounds, enforced before parsing.
    max_request_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_bearer_token_bytes: int = Field(default=8192, ge=1024)
    max_header_bytes: int = Field(default=65_536, ge=4096)
    # /docs and /openapi.json. Empty: on, except in production.
    docs_enabled: bool = True
    # /metrics wants `Authorization: Bearer <METRICS_TOKEN>` when set. In production without
    # it, /metrics is off (scrape a token-protected one, or none).
    metrics_token: SecretStr | None = None
    # Longest access-token lifetime accepted (user JWTs: exp - iat) or configured (ours).
    access_token_max_lifetime_seconds: int = Field(default=86_400, ge=60)

    @model_validator(mode="before")
    @classmethod
    def _production_defaults(cls, data: Any) -> Any:
        """Defaults that differ in production, unless set explicitly (issue 9)."""
        if not isinstance(data, dict):
            return data
        env = str(data.get("environment", "")).strip().lower()
        for name, production_default in _PRODUCTION_DEFAULTS.items():
            if data.get(name) in (None, ""):
                data.pop(name, None)
                if env == Environment.PRODUCTION:
                    data[name] = production_default
        return data

    @field_validator(
        "cors_origins",
        "oauth_redirect_allow_list",
        "password_required_characters",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("root_path")
    @classmethod
    def _root_path(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def effective_log_format(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        if self.environment is Environment.DEVELOPMENT:
            return LogFormat.CONSOLE
        return LogFormat.JSON

    @property
    def issuer(self) -> str:
        """TOKEN_ISSUER, or the URL this process serves (host, port and ROOT_PATH)."""
        if self.token_issuer:
            return self.token_issuer
        return f"{served_base_url(self.host, self.port)}{self.root_path}"

    @property
    def forwarded_allow_ips(self) -> list[str]:
        """Who may set X-Forwarded-For: TRUSTED_PROXIES, or with the older
        TRUST_FORWARDED_FOR=true alone, loopback and private networks (an in-cluster ingress)."""
        if self.trusted_proxies:
            return list(self.trusted_proxies)
        return list(_PRIVATE_NETWORKS) if self.trust_forwarded_for else []

    @property
    def supabase_configured(self) -> bool:
        return bool(self.supabase_url and self.supabase_anon_key)

    @property
    def active_identity_provider(self) -> IdentityProviderName:
        """IDENTITY_PROVIDER, else `supabase` when SUPABASE_URL is set, else `local`."""
        if self.identity_provider is not None:
            return self.identity_provider
        return IdentityProviderName.SUPABASE if self.supabase_url else IdentityProviderName.LOCAL

    @property
    def autoconfirm(self) -> bool:
        """LOCAL_AUTOCONFIRM, else on in development and test only."""
        if self.local_autoconfirm is not None:
            return self.local_autoconfirm
        return self.environment in (Environment.DEVELOPMENT, Environment.TEST)

    @field_validator("password_required_characters")
    @classmethod
    def _character_classes(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"lower", "upper", "digit", "symbol"}
        if unknown:
            raise ValueError(f"unknown classes {sorted(unknown)}: use lower,upper,digit,symbol")
        return value

    @field_validator("oidc_providers")
    @classmethod
    def _oidc_providers(cls, value: str | None) -> str | None:
        # Checked here so a bad OIDC_PROVIDERS stops startup with its reason, like any setting.
        from auth_service.identity.local.oidc import parse_oidc_providers

        parse_oidc_providers(value)
        return value

    def _production_hardening(self, secrets: dict[str, SecretStr | None]) -> list[str]:
        """Issue 9's production rules. Messages name the setting and the rule, never a value."""
        problems: list[str] = []
        if self.token_issuer and not _is_https(self.token_issuer):
            problems.append("TOKEN_ISSUER must be an https:// URL in production")
        if self.supabase_url and not _is_https(self.supabase_url):
            problems.append("SUPABASE_URL must be an https:// URL in production")
        for origin in self.cors_origins:
            if origin.strip().lower() == "null" or not _is_https(origin):
                problems.append("CORS_ORIGINS must list only https:// origins in production")
                break
        checked = dict(secrets)
        if self.supabase_jwt_secret is not None:
            checked["SUPABASE_JWT_SECRET"] = self.supabase_jwt_secret
        # M2M_JWT_SECRET_KEY and the other secrets: the 32-character rule above.
        for name in ("SUPABASE_JWT_SECRET",):
            value = checked.get(name)
            raw = value.get_secret_value() if value is not None else ""
            if raw.lower() not in INSECURE_SECRET_VALUES and len(raw.encode()) < 32:
                problems.append(f"{name} must be at least 32 bytes in production")
        seen: dict[str, str] = {}
        for name, value in checked.items():
            raw = value.get_secret_value() if value is not None else ""
            if not raw or raw.lower() in INSECURE_SECRET_VALUES:
                continue
            if name not in {"SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY"} and _low_entropy(raw):
                problems.append(f"{name} must be random (too few distinct characters)")
            if raw in seen:
                problems.append(f"{name} must differ from {seen[raw]}: one secret per purpose")
            seen.setdefault(raw, name)
        if not self.redis_url:
            problems.append("REDIS_URL must be set in production (shared denylists and limits)")
        if not self.rate_limit_enabled:
            problems.append("RATE_LIMIT_ENABLED must be true in production")
        return problems

    @model_validator(mode="after")
    def _token_lifetime_capped(self) -> Settings:
        if self.access_token_ttl_seconds > self.access_token_max_lifetime_seconds:
            raise ValueError(
                "ACCESS_TOKEN_TTL_SECONDS must not exceed ACCESS_TOKEN_MAX_LIFETIME_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if not self.is_production:
            return self
        problems: list[str] = []
        if self.active_identity_provider is IdentityProviderName.LOCAL and not self.smtp_host:
            problems.append(
                "SMTP_HOST must be set in production with IDENTITY_PROVIDER=local"
                " (confirmation and recovery emails)"
            )
        if not self.auth_service_database_url:
            problems.append("AUTH_SERVICE_DATABASE_URL must be set in production")
        secrets: dict[str, SecretStr | None] = {
            "M2M_JWT_SECRET_KEY": self.m2m_jwt_secret_key,
            "SIGNING_KEY_ENCRYPTION_KEY": self.signing_key_encryption_key,
            "CLIENT_SECRET_PEPPER": self.client_secret_pepper,
            "OAUTH_STATE_SECRET": self.oauth_state_secret,
        }
        if self.supabase_url:
            secrets["SUPABASE_ANON_KEY"] = self.supabase_anon_key
            secrets["SUPABASE_SERVICE_ROLE_KEY"] = self.supabase_service_role_key
        for name, value in secrets.items():
            raw = value.get_secret_value() if value is not None else ""
            if raw.lower() in INSECURE_SECRET_VALUES:
                problems.append(f"{name} must be set to a non-default secret in production")
            elif len(raw) < 32 and name not in {"SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY"}:
                problems.append(f"{name} must be at least 32 characters in production")
        if "*" in self.cors_origins:
            problems.append("CORS_ORIGINS must not contain '*' in production")
        if not self.token_issuer:
            problems.append("TOKEN_ISSUER must be set in production (the public https URL)")
        problems += self._production_hardening(secrets)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def served_base_url(host: str, port: int) -> str:
    """The URL a client on this machine uses to reach a server bound to host:port."""
    if host in {"0.0.0.0", "", "::"}:  # noqa: S104 - every interface: loopback reaches it
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def configuration_problems(exc: ValidationError) -> list[str]:
    """One line per problem, naming the setting and the rule, never the value given.

    pydantic's own text repeats the input (`input_value=...`), which may be a secret.
    """
    lines: list[str] = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = [str(part) for part in error["loc"]]
        if loc:
            lines.append(f"{loc[0].upper()}: {message}")
        else:  # the model-level checks (production guard) join their problems with "; "
            lines.extend(part for part in message.split("; ") if part)
    return lines


def _is_https(url: str) -> bool:
    return urlsplit(url.strip()).scheme.lower() == "https" and bool(urlsplit(url.strip()).netloc)


def _low_entropy(value: str) -> bool:
    """Few distinct characters, or under 3 bits per character: a pattern, not a secret."""
    if len(set(value)) < 10:
        return True
    counts = Counter(value)
    bits = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return bits < 3.0


@lru_cache
def get_settings() -> Settings:
    return Settings()
