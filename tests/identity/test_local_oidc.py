"""Upstream OpenID Connect for social login in local mode, against a real provider on loopback.

The provider (tests/support/oidc_provider.py) is reached over HTTP only: we follow its
authorize redirect with httpx, as a browser would, then exchange the code through Authlib.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from auth_service.identity.local.oidc import (
    DEFAULT_SCOPES,
    OidcError,
    OidcIdentity,
    OidcProviderConfig,
    OidcProviderDisabled,
    OidcProviderUnavailable,
    OidcUpstreams,
    parse_oidc_providers,
)
from tests.support.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    OidcProvider,
    _b64url,
    run_oidc_provider,
)


@pytest.fixture(scope="module")
def served() -> Iterator[OidcProvider]:
    with run_oidc_provider() as provider:
        yield provider


@pytest.fixture
def provider(served: OidcProvider) -> OidcProvider:
    served.reset()
    return served


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def config_for(provider: OidcProvider, **changes: Any) -> OidcProviderConfig:
    config = OidcProviderConfig(
        name="test",
        issuer=provider.issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        scopes=DEFAULT_SCOPES,
    )
    return replace(config, **changes)


@pytest.fixture
def upstreams(provider: OidcProvider, http: httpx.AsyncClient) -> OidcUpstreams:
    return OidcUpstreams({"test": config_for(provider)}, http)


async def start(upstreams: OidcUpstreams, http: httpx.AsyncClient) -> tuple[str, str, str]:
    """Authorize as a browser would; the code, verifier and nonce for the exchange."""
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(48)
    url = await upstreams.authorization_url(
        "test", redirect_uri=REDIRECT_URI, state=state, nonce=nonce, code_verifier=verifier
    )
    response = await http.get(url)
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == [state]
    return query["code"][0], verifier, nonce


async def sign_in(upstreams: OidcUpstreams, http: httpx.AsyncClient) -> OidcIdentity:
    code, verifier, nonce = await start(upstreams, http)
    return await upstreams.exchange(
        "test", code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier, nonce=nonce
    )


# --- happy paths ---------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_sign_in_through_real_http_returns_the_verified_identity(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient, alg: str
) -> None:
    provider.signing_alg = alg
    identity = await sign_in(upstreams, http)

    assert identity.provider == "test"
    assert identity.subject == provider.user.subject
    assert identity.email == "ada@example.com"
    assert identity.email_verified is True
    assert identity.claims["name"] == "Ada Lovelace"
    assert identity.claims["iss"] == provider.issuer
    assert identity.claims["aud"] == CLIENT_ID
    assert provider.last_client_auth == "client_secret_basic"


async def test_authorization_url_carries_pkce_s256_nonce_state_and_scopes(
    provider: OidcProvider, upstreams: OidcUpstreams
) -> None:
    verifier = secrets.token_urlsafe(48)
    url = await upstreams.authorization_url(
        "test", redirect_uri=REDIRECT_URI, state="st-1", nonce="n-1", code_verifier=verifier
    )
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{provider.issuer}/authorize"
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert query == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile",
        "state": "st-1",
        "nonce": "n-1",
        "code_challenge": _b64url(hashlib.sha256(verifier.encode()).digest()),
        "code_challenge_method": "S256",
    }
    assert verifier not in url


async def test_client_secret_post_is_used_when_it_is_all_the_provider_supports(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    provider.auth_methods = ["client_secret_post"]
    identity = await sign_in(upstreams, http)
    assert identity.subject == provider.user.subject
    assert provider.last_client_auth == "client_secret_post"


async def test_discovery_and_keys_are_fetched_once_for_many_sign_ins(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    for _ in range(3):
        await sign_in(upstreams, http)
    assert (provider.discovery_requests, provider.jwks_requests) == (1, 1)


async def test_discovery_is_fetched_again_after_its_ttl(
    provider: OidcProvider, http: httpx.AsyncClient
) -> None:
    upstreams = OidcUpstreams(
        {"test": config_for(provider)}, http, discovery_ttl_seconds=0, jwks_ttl_seconds=0
    )
    await sign_in(upstreams, http)
    await sign_in(upstreams, http)
    # Each sign-in discovers twice (authorize URL, exchange) and reads the keys once.
    assert (provider.discovery_requests, provider.jwks_requests) == (4, 2)


async def test_rotated_provider_keys_are_picked_up_by_refetching_the_jwks_once(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    await sign_in(upstreams, http)
    provider.rotate_keys()
    identity = await sign_in(upstreams, http)
    assert identity.subject == provider.user.subject
    assert provider.jwks_requests == 2


@pytest.mark.parametrize("value", [False, "false", None])
async def test_email_verified_is_true_only_when_the_provider_says_so(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient, value: Any
) -> None:
    if value is None:
        provider.user.email = None
    else:
        provider.user.email_verified = value
    identity = await sign_in(upstreams, http)
    assert identity.email_verified is False
    assert identity.email == (None if value is None else "ada@example.com")


async def test_email_verified_as_the_string_true_counts(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    provider.user.email_verified = "true"
    assert (await sign_in(upstreams, http)).email_verified is True


async def test_an_email_kept_out_of_the_id_token_is_read_from_userinfo(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    await sign_in(upstreams, http)
    assert provider.userinfo_requests == 0  # not asked when the id_token has the email
    provider.misbehave.email_only_in_userinfo = True
    identity = await sign_in(upstreams, http)
    assert (identity.email, identity.email_verified) == ("ada@example.com", True)
    assert provider.userinfo_requests == 1


async def test_userinfo_about_another_subject_is_refused(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    provider.misbehave.email_only_in_userinfo = True
    provider.misbehave.userinfo_subject = "someone-else"
    with pytest.raises(OidcError):
        await sign_in(upstreams, http)
    assert provider.userinfo_requests == 1


async def test_concurrent_first_sign_ins_discover_once(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    identities = await asyncio.gather(*(sign_in(upstreams, http) for _ in range(5)))
    assert {identity.subject for identity in identities} == {provider.user.subject}
    assert (provider.discovery_requests, provider.jwks_requests) == (1, 1)


# --- a misbehaving provider is refused -----------------------------------------------------------
ID_TOKEN_FORGERIES: dict[str, tuple[dict[str, Any], str]] = {
    "wrong nonce": ({"id_token_nonce": "someone-elses-nonce"}, "'nonce'"),
    "wrong audience": ({"id_token_audience": "another-client"}, "'aud'"),
    "extra audience without azp": (
        {"id_token_audience": [CLIENT_ID, "another-client"]},
        "'azp'",
    ),
    "expired": ({"expired": True}, "ExpiredTokenError"),
    "wrong issuer": ({"id_token_issuer": "https://evil.example"}, "'iss'"),
    "unknown kid": ({"unknown_kid": True}, "InvalidKeyIdError"),
    "alg none": ({"alg_none": True}, "'none' is not allowed"),
    "HS256 keyed with the public key": ({"hs256_with_public_key": True}, "'HS256' is not allowed"),
    "no id_token": ({"omit_id_token": True}, "no id_token"),
}


@pytest.mark.parametrize(
    ("knob", "reason"), ID_TOKEN_FORGERIES.values(), ids=ID_TOKEN_FORGERIES.keys()
)
async def test_a_bad_id_token_is_refused(
    provider: OidcProvider,
    upstreams: OidcUpstreams,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    knob: dict[str, Any],
    reason: str,
) -> None:
    provider.misbehave = replace(provider.misbehave, **knob)
    with caplog.at_level(logging.WARNING), pytest.raises(OidcError) as caught:
        await sign_in(upstreams, http)
    assert type(caught.value) is OidcError
    assert (caught.value.status_code, caught.value.code) == (400, "oauth_provider_error")
    # Refused for this reason (the log says why), not for some other failure on the way.
    assert reason in caplog.text


async def test_alg_none_is_refused_even_when_the_provider_advertises_it(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    provider.advertised_algs = ["none", "HS256", "RS256"]
    provider.misbehave.alg_none = True
    with pytest.raises(OidcError):
        await sign_in(upstreams, http)


async def test_an_unknown_kid_refetches_the_keys_exactly_once(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    await sign_in(upstreams, http)
    provider.misbehave.unknown_kid = True
    for _ in range(2):
        with pytest.raises(OidcError):
            await sign_in(upstreams, http)
    assert provider.jwks_requests == 3  # the first fetch, then one per unknown kid


async def test_a_discovery_document_for_another_issuer_is_refused(
    provider: OidcProvider, upstreams: OidcUpstreams
) -> None:
    provider.misbehave.discovery_issuer = "https://accounts.example"
    with pytest.raises(OidcProviderUnavailable) as caught:
        await upstreams.authorization_url(
            "test",
            redirect_uri=REDIRECT_URI,
            state="s",
            nonce="n",
            code_verifier=secrets.token_urlsafe(48),
        )
    assert (caught.value.status_code, caught.value.code) == (503, "identity_provider_unavailable")
    # Not cached: the next attempt asks again.
    provider.misbehave.discovery_issuer = None
    await upstreams.authorization_url(
        "test", redirect_uri=REDIRECT_URI, state="s", nonce="n", code_verifier="v" * 43
    )
    assert provider.discovery_requests == 2


async def test_a_wrong_code_verifier_is_refused_by_the_provider(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    code, _, nonce = await start(upstreams, http)
    with pytest.raises(OidcError):
        await upstreams.exchange(
            "test",
            code=code,
            redirect_uri=REDIRECT_URI,
            code_verifier=secrets.token_urlsafe(48),
            nonce=nonce,
        )
    assert provider.last_token_error == "invalid_grant"


async def test_a_code_is_redeemed_once(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    code, verifier, nonce = await start(upstreams, http)
    flow = {"code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier, "nonce": nonce}
    await upstreams.exchange("test", **flow)
    with pytest.raises(OidcError):
        await upstreams.exchange("test", **flow)
    assert provider.last_token_error == "invalid_grant"


async def test_a_different_redirect_uri_at_the_exchange_is_refused(
    provider: OidcProvider, upstreams: OidcUpstreams, http: httpx.AsyncClient
) -> None:
    code, verifier, nonce = await start(upstreams, http)
    with pytest.raises(OidcError):
        await upstreams.exchange(
            "test",
            code=code,
            redirect_uri="http://127.0.0.1:8000/elsewhere",
            code_verifier=verifier,
            nonce=nonce,
        )
    assert provider.last_token_error == "invalid_grant"


async def test_a_wrong_client_secret_fails_without_leaking_it_or_the_upstream_words(
    provider: OidcProvider,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "wrong-secret-3b1c9d"
    upstreams = OidcUpstreams({"test": config_for(provider, client_secret=wrong)}, http)
    with caplog.at_level(logging.DEBUG), pytest.raises(OidcError) as caught:
        await sign_in(upstreams, http)
    assert provider.last_token_error == "invalid_client"
    text = f"{caught.value} {caught.value.message} {caught.value.details} {caplog.text}"
    for secret in (wrong, CLIENT_SECRET, provider.misbehave.token_error_description):
        assert secret not in text
    assert "invalid_client" in caplog.text  # the RFC 6749 code is logged, for the operator


async def test_a_failing_token_endpoint_is_unavailable_and_its_body_is_not_repeated(
    provider: OidcProvider,
    upstreams: OidcUpstreams,
    http: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider.misbehave.token_status = 502
    with caplog.at_level(logging.DEBUG), pytest.raises(OidcProviderUnavailable):
        await sign_in(upstreams, http)
    assert provider.misbehave.token_error_description not in caplog.text


async def test_a_slow_token_endpoint_times_out(
    provider: OidcProvider, http: httpx.AsyncClient
) -> None:
    upstreams = OidcUpstreams({"test": config_for(provider)}, http, timeout_seconds=0.3)
    provider.misbehave.token_delay_seconds = 1.0
    with pytest.raises(OidcProviderUnavailable):
        await sign_in(upstreams, http)


async def test_an_unreachable_issuer_is_unavailable(http: httpx.AsyncClient) -> None:
    from tests.support.live import free_port

    config = OidcProviderConfig(
        name="gone",
        issuer=f"http://127.0.0.1:{free_port()}",
        client_id="c",
        client_secret="s",
        scopes=DEFAULT_SCOPES,
    )
    upstreams = OidcUpstreams({"gone": config}, http)
    with pytest.raises(OidcProviderUnavailable):
        await upstreams.authorization_url(
            "gone", redirect_uri=REDIRECT_URI, state="s", nonce="n", code_verifier="v" * 43
        )


async def test_a_provider_that_is_not_configured_is_disabled(
    upstreams: OidcUpstreams,
) -> None:
    assert upstreams.is_configured("test")
    assert not upstreams.is_configured("github")
    with pytest.raises(OidcProviderDisabled) as caught:
        await upstreams.exchange(
            "github", code="c", redirect_uri=REDIRECT_URI, code_verifier="v" * 43, nonce="n"
        )
    assert isinstance(caught.value, OidcError)
    assert (caught.value.status_code, caught.value.code) == (400, "provider_disabled")


async def test_a_blank_nonce_is_a_programming_error(upstreams: OidcUpstreams) -> None:
    with pytest.raises(ValueError, match="nonce"):
        await upstreams.authorization_url(
            "test", redirect_uri=REDIRECT_URI, state="s", nonce="", code_verifier="v" * 43
        )
    with pytest.raises(OidcError):
        await upstreams.exchange(
            "test", code="c", redirect_uri=REDIRECT_URI, code_verifier="v" * 43, nonce=""
        )


# --- OIDC_PROVIDERS ------------------------------------------------------------------------------
SECRET = "s3cr3t-value-never-echoed"


def test_oidc_providers_parse_with_default_and_explicit_scopes() -> None:
    raw = json.dumps(
        [
            {
                "name": "google",
                "issuer": "https://accounts.google.com",
                "client_id": "123.apps.googleusercontent.com",
                "client_secret": SECRET,
            },
            {
                "name": "keycloak",
                "issuer": "https://sso.example.com/realms/acme",
                "client_id": "auth-service",
                "client_secret": SECRET,
                "scopes": ["openid", "email", "roles"],
            },
        ]
    )
    providers = parse_oidc_providers(raw)
    assert list(providers) == ["google", "keycloak"]
    assert providers["google"] == OidcProviderConfig(
        name="google",
        issuer="https://accounts.google.com",
        client_id="123.apps.googleusercontent.com",
        client_secret=SECRET,
        scopes=("openid", "email", "profile"),
    )
    assert providers["keycloak"].scopes == ("openid", "email", "roles")
    assert SECRET not in repr(providers)


@pytest.mark.parametrize("raw", [None, "", "  ", "[]"])
def test_no_oidc_providers_is_an_empty_mapping(raw: str | None) -> None:
    assert parse_oidc_providers(raw) == {}


def test_a_loopback_issuer_may_use_plain_http() -> None:
    raw = json.dumps(
        [{"name": "dev", "issuer": "http://127.0.0.1:5556", "client_id": "c", "client_secret": "s"}]
    )
    assert parse_oidc_providers(raw)["dev"].issuer == "http://127.0.0.1:5556"


GOOD = {"name": "acme", "issuer": "https://id.acme.test", "client_id": "c", "client_secret": SECRET}
BAD_PROVIDERS: dict[str, tuple[Any, str]] = {
    "not a list": ({"name": "acme"}, "JSON list"),
    "entry not an object": (["acme"], r"OIDC_PROVIDERS\[0\] must be an object"),
    "bad name": ([{**GOOD, "name": "Acme Corp"}], "'name'"),
    "missing secret": ([{k: v for k, v in GOOD.items() if k != "client_secret"}], "client_secret"),
    "blank client id": ([{**GOOD, "client_id": " "}], "client_id"),
    "unknown field": ([{**GOOD, "client-secret": SECRET}], "unknown field.*client-secret"),
    "http issuer": ([{**GOOD, "issuer": "http://id.acme.test"}], "https"),
    "relative issuer": ([{**GOOD, "issuer": "id.acme.test"}], "absolute"),
    "issuer with query": ([{**GOOD, "issuer": "https://id.acme.test/?x=1"}], "query"),
    "scopes not a list": ([{**GOOD, "scopes": "openid email"}], "'scopes'"),
    "scopes without openid": ([{**GOOD, "scopes": ["email"]}], "openid"),
    "duplicate name": ([GOOD, GOOD], "used twice"),
}


@pytest.mark.parametrize(("document", "message"), BAD_PROVIDERS.values(), ids=BAD_PROVIDERS.keys())
def test_bad_oidc_providers_name_the_problem_and_never_the_secret(
    document: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_oidc_providers(json.dumps(document))
    assert SECRET not in str(caught.value)


def test_invalid_json_gives_the_position_not_the_text() -> None:
    raw = f'[{{"name": "acme", "client_secret": "{SECRET}",}}]'
    with pytest.raises(ValueError, match=r"not valid JSON.*line 1") as caught:
        parse_oidc_providers(raw)
    assert SECRET not in str(caught.value)
    assert caught.value.__suppress_context__  # a traceback would not show the document
