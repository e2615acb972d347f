"""Social login in local mode: upstream OpenID Connect providers, spoken through Authlib.

Each configured provider is found by discovery (`/.well-known/openid-configuration`, cached
per issuer, its `issuer` must equal ours). Authlib's async httpx client builds the authorize
URL (PKCE S256, state, nonce) and redeems the code with the client authentication the
provider advertises; the id_token is verified with joserfc against the provider's JWKS
(cached, refetched once for an unknown `kid`) and its claims with Authlib's `CodeIDToken`.

Every failure is an `OidcError` whose message is ours: no upstream body, description or
secret reaches a response or a log line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from auth_service.core.errors import AppError

with warnings.catch_warnings():
    import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401  (installs "always")

    # Authlib nudges plain-httpx users towards httpx2; plain httpx is what we use.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
        OAuthError,
    )
    from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]

logger = logging.getLogger("auth_service.identity.oidc")

DEFAULT_SCOPES: tuple[str, ...] = ("openid", "email", "profile")
# Asymmetric signatures only: "none" and the HS family (which a public key would "verify")
# can never be chosen, whatever the provider advertises.
ALLOWED_ID_TOKEN_ALGORITHMS: tuple[str, ...] = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
_PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
_PROVIDER_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 scope-token
_CODE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 section 4.1
_OAUTH_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")
_PROVIDER_KEYS = frozenset({"name", "issuer", "client_id", "client_secret", "scopes"})


class OidcError(AppError):
    """The sign-in with an upstream OpenID Connect provider failed; start again."""

    status_code = 400
    code = "oauth_provider_error"
    message = "The sign-in with the external provider failed. Start the sign-in again."


class OidcProviderDisabled(OidcError):
    code = "provider_disabled"
    message = "This sign-in provider is not enabled on this service."


class OidcProviderUnavailable(OidcError):
    """Discovery, keys or token endpoint unreachable, slow, or answering nonsense."""

    status_code = 503
    code = "identity_provider_unavailable"
    message = "The external sign-in provider is unavailable. Try again later."


@dataclass(frozen=True)
class OidcProviderConfig:
    name: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = DEFAULT_SCOPES


@dataclass(frozen=True)
class OidcIdentity:
    provider: str
    subject: str
    email: str | None
    email_verified: bool
    claims: dict[str, Any]


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, *, insecure_loopback: bool) -> str | None:
    """Why `url` is not acceptable as an issuer or endpoint, or None when it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a URL"
    if not parts.hostname:
        return "is not an absolute URL"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and insecure_loopback and is_loopback_host(parts.hostname):
        return None
    return "must use https (plain http only on a loopback host)"


def parse_oidc_providers(raw: str | None) -> dict[str, OidcProviderConfig]:
    """Parse OIDC_PROVIDERS: a JSON list of `{name, issuer, client_id, client_secret, scopes?}`.

    Raises ValueError naming the entry and the problem; a secret is never part of a message.
    """
    if raw is None or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        # Only the position: the document holds secrets.
        raise ValueError(
            f"OIDC_PROVIDERS is not valid JSON ({error.msg} at line {error.lineno}, "
            f"column {error.colno})"
        ) from None
    if not isinstance(data, list):
        raise ValueError("OIDC_PROVIDERS must be a JSON list of provider objects")
    providers: dict[str, OidcProviderConfig] = {}
    for index, entry in enumerate(data):
        config = _parse_provider(index, entry)
        if config.name in providers:
            raise ValueError(f"OIDC_PROVIDERS[{index}]: the name {config.name!r} is used twice")
        providers[config.name] = config
    return providers


def _parse_provider(index: int, entry: object) -> OidcProviderConfig:
    where = f"OIDC_PROVIDERS[{index}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object")
    name = entry.get("name")
    if isinstance(name, str) and _PROVIDER_NAME.match(name):
        where = f"{where} ({name})"
    else:
        raise ValueError(f"{where}: 'name' must be 1-32 characters of a-z, 0-9, '_' or '-'")
    unknown = sorted(str(key) for key in entry if key not in _PROVIDER_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    strings: dict[str, str] = {}
    for key in ("issuer", "client_id", "client_secret"):
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {key!r} is required and must be a non-empty string")
        strings[key] = value.strip()
    issuer = strings["issuer"]
    problem = _check_url(issuer, insecure_loopback=True)
    if problem is None and (urlsplit(issuer).query or urlsplit(issuer).fragment):
        problem = "must not have a query or fragment"
    if problem:
        raise ValueError(f"{where}: 'issuer' {problem}")
    scopes = entry.get("scopes", list(DEFAULT_SCOPES))
    if (
        not isinstance(scopes, list)
        or not scopes
        or not all(isinstance(scope, str) and _SCOPE.match(scope) for scope in scopes)
    ):
        raise ValueError(f"{where}: 'scopes' must be a non-empty list of scope strings")
    if "openid" not in scopes:
        raise ValueError(f"{where}: 'scopes' must include 'openid'")
    return OidcProviderConfig(
        name=name,
        issuer=issuer,
        client_id=strings["client_id"],
        client_secret=strings["client_secret"],
        scopes=tuple(dict.fromkeys(scopes)),
    )


class _ThroughClient(httpx.AsyncBaseTransport):
    """Authlib's client sends through our shared httpx client (its pool and TLS settings).

    Closing Authlib's per-call client must not close the shared one, hence `aclose` is a no-op.
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._client.send(request)

    async def aclose(self) -> None:
        return None


@dataclass
class _Cached:
    value: Any
    expires_at: float


class OidcUpstreams:
    """The configured upstream OpenID Connect providers (one instance per app)."""

    def __init__(
        self,
        providers: Mapping[str, OidcProviderConfig],
        http: httpx.AsyncClient,
        *,
        timeout_seconds: float = 10.0,
        discovery_ttl_seconds: float = 3600.0,
        jwks_ttl_seconds: float = 3600.0,
        leeway_seconds: int = 60,
    ) -> None:
        self._providers = dict(providers)
        self._http = http
        self._timeout = timeout_seconds
        self._discovery_ttl = discovery_ttl_seconds
        self._jwks_ttl = jwks_ttl_seconds
        self._leeway = leeway_seconds
        self._metadata: dict[str, _Cached] = {}
        self._jwks: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def is_configured(self, name: str) -> bool:
        return name in self._providers

    async def authorization_url(
        self, provider: str, *, redirect_uri: str, state: str, nonce: str, code_verifier: str
    ) -> str:
        """The provider's authorize URL: response_type=code, PKCE S256, state and nonce."""
        config = self._config(provider)
        if not (state and nonce and _CODE_VERIFIER.match(code_verifier)):
            # A programming error, not the user's: a blank nonce would turn its check off.
            raise ValueError("state, nonce and an RFC 7636 code_verifier (43-128 chars) are needed")
        metadata = await self._discover(config)
        async with self._oauth_client(config, metadata) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=state,
                code_verifier=code_verifier,
                redirect_uri=redirect_uri,
                nonce=nonce,
            )
        return str(url)

    async def exchange(
        self, provider: str, *, code: str, redirect_uri: str, code_verifier: str, nonce: str
    ) -> OidcIdentity:
        """Redeem the authorization code and return the identity from the verified id_token."""
        config = self._config(provider)
        if not (code and nonce and _CODE_VERIFIER.match(code_verifier)):
            self._refuse(config, "no code, nonce or a malformed code_verifier")
        metadata = await self._discover(config)
        token = await self._fetch_token(config, metadata, code, redirect_uri, code_verifier)
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            self._refuse(config, "the token response has no id_token")
        access_token = token.get("access_token")
        claims = await self._verify_id_token(
            config,
            metadata,
            id_token,
            nonce=nonce,
            access_token=access_token if isinstance(access_token, str) else None,
        )
        if not claims.get("email") and isinstance(access_token, str) and access_token:
            claims = await self._with_userinfo_email(config, metadata, claims, access_token)
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            email = None
        return OidcIdentity(
            provider=config.name,
            subject=claims["sub"],
            email=email,
            # Some providers (older Cognito, some Azure tenants) send the string "true".
            email_verified=email is not None and claims.get("email_verified") in (True, "true"),
            claims=claims,
        )

    # --- internals -----------------------------------------------------------------------------
    def _config(self, provider: str) -> OidcProviderConfig:
        config = self._providers.get(provider)
        if config is None:
            raise OidcProviderDisabled()
        return config

    def _refuse(self, config: OidcProviderConfig, reason: str) -> NoReturn:
        logger.warning("oidc %s: sign-in refused: %s", config.name, reason)
        raise OidcError()

    def _unavailable(self, config: OidcProviderConfig, reason: str) -> NoReturn:
        logger.warning("oidc %s: provider unavailable: %s", config.name, reason)
        raise OidcProviderUnavailable()

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _get_json(
        self,
        config: OidcProviderConfig,
        url: str,
        what: str,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.get(
                    url,
                    headers={"Accept": "application/json", **(headers or {})},
                    timeout=self._timeout,
                )
        except (TimeoutError, httpx.TimeoutException):
            self._unavailable(config, f"{what}: timed out")
        except httpx.HTTPError as error:
            self._unavailable(config, f"{what}: {type(error).__name__}")
        if response.status_code != 200:
            self._unavailable(config, f"{what}: HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            self._unavailable(config, f"{what}: not a JSON object")
        return document

    async def _discover(self, config: OidcProviderConfig) -> dict[str, Any]:
        cached = self._metadata.get(config.issuer)
        if cached is not None and cached.expires_at > time.monotonic():
            metadata: dict[str, Any] = cached.value
            return metadata
        async with self._lock(f"discovery {config.issuer}"):
            cached = self._metadata.get(config.issuer)
            if cached is not None and cached.expires_at > time.monotonic():
                metadata = cached.value
                return metadata
            url = config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            metadata = await self._get_json(config, url, "discovery")
            self._check_metadata(config, metadata)
            self._metadata[config.issuer] = _Cached(
                metadata, time.monotonic() + self._discovery_ttl
            )
            return metadata

    def _check_metadata(self, config: OidcProviderConfig, metadata: dict[str, Any]) -> None:
        # OpenID Connect Discovery 1.0, section 4.3: the issuer must be exactly the one asked.
        if metadata.get("issuer") != config.issuer:
            self._unavailable(config, "discovery: the document's issuer is not the configured one")
        loopback = is_loopback_host(urlsplit(config.issuer).hostname)
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = metadata.get(key)
            problem = (
                _check_url(value, insecure_loopback=loopback)
                if isinstance(value, str)
                else "is missing"
            )
            if problem:
                self._unavailable(config, f"discovery: {key} {problem}")
        userinfo = metadata.get("userinfo_endpoint")
        if userinfo is not None and (
            not isinstance(userinfo, str) or _check_url(userinfo, insecure_loopback=loopback)
        ):
            self._unavailable(config, "discovery: userinfo_endpoint is not a usable URL")
        if not self._algorithms(metadata):
            self._unavailable(config, "discovery: no id_token signing algorithm we accept")
        if self._auth_method(metadata) is None:
            self._unavailable(config, "discovery: no client authentication method we support")

    @staticmethod
    def _algorithms(metadata: Mapping[str, Any]) -> list[str]:
        advertised = metadata.get("id_token_signing_alg_values_supported")
        if not isinstance(advertised, list):
            advertised = ["RS256"]  # the default of OpenID Connect Discovery
        return [alg for alg in ALLOWED_ID_TOKEN_ALGORITHMS if alg in advertised]

    @staticmethod
    def _auth_method(metadata: Mapping[str, Any]) -> str | None:
        supported = metadata.get("token_endpoint_auth_methods_supported")
        if not isinstance(supported, list):
            return "client_secret_basic"  # the default of OpenID Connect Discovery
        for method in ("client_secret_basic", "client_secret_post"):
            if method in supported:
                return method
        return None

    def _oauth_client(self, config: OidcProviderConfig, metadata: Mapping[str, Any]) -> Any:
        return AsyncOAuth2Client(
            client_id=config.client_id,
            client_secret=config.client_secret,
            token_endpoint_auth_method=self._auth_method(metadata),
            scope=" ".join(config.scopes),
            code_challenge_method="S256",
            transport=_ThroughClient(self._http),
            timeout=self._timeout,
            trust_env=False,
        )

    async def _fetch_token(
        self,
        config: OidcProviderConfig,
        metadata: Mapping[str, Any],
        code: str,
        redirect_uri: str,
        code_verifier: str,
    ) -> dict[str, Any]:
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._oauth_client(config, metadata) as client,
            ):
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    redirect_uri=redirect_uri,
                    code_verifier=code_verifier,
                )
        except (TimeoutError, httpx.TimeoutException):
            self._unavailable(config, "token endpoint: timed out")
        except httpx.HTTPStatusError as error:
            self._unavailable(config, f"token endpoint: HTTP {error.response.status_code}")
        except httpx.HTTPError as error:
            self._unavailable(config, f"token endpoint: {type(error).__name__}")
        except OAuthError as error:
            # The code is a short token from RFC 6749; the description is the upstream's words.
            reason = str(getattr(error, "error", ""))
            if not _OAUTH_ERROR_CODE.match(reason):
                reason = "unrecognised error"
            self._refuse(config, f"token endpoint: {reason}")
        except ValueError:
            self._refuse(config, "token endpoint: the response is not a JSON object")
        return dict(token)

    async def _keys(
        self, config: OidcProviderConfig, metadata: Mapping[str, Any], *, refresh: bool
    ) -> KeySet:
        uri: str = metadata["jwks_uri"]
        cached = self._jwks.get(uri)
        if not refresh and cached is not None and cached.expires_at > time.monotonic():
            keys: KeySet = cached.value
            return keys
        async with self._lock(f"jwks {uri}"):
            fresh = self._jwks.get(uri)
            # Another request refreshed it while we waited: use theirs.
            if fresh is not None and fresh is not cached and fresh.expires_at > time.monotonic():
                keys = fresh.value
                return keys
            document = await self._get_json(config, uri, "jwks")
            entries = document.get("keys")
            if not isinstance(entries, list):
                self._unavailable(config, "jwks: no 'keys' list")
            # Public asymmetric keys only; anything else is ignored rather than trusted.
            public = [
                entry
                for entry in entries
                if isinstance(entry, dict)
                and entry.get("kty") in _PUBLIC_KEY_TYPES
                and entry.get("use", "sig") == "sig"
                and "d" not in entry
            ]
            try:
                keys = KeySet.import_key_set({"keys": public})
            except (JoseError, ValueError, TypeError, KeyError):
                self._unavailable(config, "jwks: a key could not be imported")
            self._jwks[uri] = _Cached(keys, time.monotonic() + self._jwks_ttl)
            return keys

    async def _verify_id_token(
        self,
        config: OidcProviderConfig,
        metadata: Mapping[str, Any],
        id_token: str,
        *,
        nonce: str,
        access_token: str | None,
    ) -> dict[str, Any]:
        registry = JWSRegistry(algorithms=self._algorithms(metadata), strict_check_header=False)
        keys = await self._keys(config, metadata, refresh=False)
        try:
            try:
                token = jwt.decode(id_token, keys, registry=registry)
            except InvalidKeyIdError:
                # The provider may have rotated its keys since we cached them: look once more.
                keys = await self._keys(config, metadata, refresh=True)
                token = jwt.decode(id_token, keys, registry=registry)
            options = {
                "iss": {"essential": True, "value": config.issuer},
                "aud": {"essential": True, "value": config.client_id},
                "sub": {"essential": True},
                "exp": {"essential": True},
                "iat": {"essential": True},
            }
            params: dict[str, Any] = {"nonce": nonce, "client_id": config.client_id}
            if access_token:
                params["access_token"] = access_token
            claims = CodeIDToken(token.claims, token.header, options, params)
            claims.validate(leeway=self._leeway)
        except (JoseError, ValueError, TypeError, KeyError) as error:
            # joserfc's error names ("ExpiredTokenError", "InvalidClaimError: aud") are ours to log.
            detail = getattr(error, "description", None) or getattr(error, "error", "")
            self._refuse(config, f"id_token: {type(error).__name__} {detail}".strip())
        verified = dict(claims)
        if not isinstance(verified.get("sub"), str) or not verified["sub"]:
            self._refuse(config, "id_token: 'sub' is not a non-empty string")
        return verified

    async def _with_userinfo_email(
        self,
        config: OidcProviderConfig,
        metadata: Mapping[str, Any],
        claims: dict[str, Any],
        access_token: str,
    ) -> dict[str, Any]:
        """Some providers keep the email out of the id_token: ask the UserInfo endpoint."""
        url = metadata.get("userinfo_endpoint")
        if not isinstance(url, str):
            return claims
        userinfo = await self._get_json(
            config, url, "userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )
        # OpenID Connect Core 5.3.2: a UserInfo answer about another subject is not used.
        if userinfo.get("sub") != claims["sub"]:
            self._refuse(config, "userinfo: 'sub' differs from the id_token's")
        merged = dict(claims)
        for key in ("email", "email_verified"):
            if key in userinfo:
                merged[key] = userinfo[key]
        return merged
