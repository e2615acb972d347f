"""OAuth2 endpoints: token (client credentials), introspection, revocation, JWKS, metadata.

Bodies are parsed by hand: both form and JSON are accepted, duplicates are refused (RFC 6749
§3.2), and it keeps the token endpoint lean.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from auth_service.audit import AuditAction, AuditEvent, Outcome, Target, record_detached
from auth_service.audit.service import rate_limit_event, trip_throttle
from auth_service.config import Settings
from auth_service.core.actor import Actor, ActorKind
from auth_service.core.errors import RateLimited
from auth_service.core.ratelimit import client_ip
from auth_service.oauth2.assertions import (
    ASSERTION_TYPE,
    ASYMMETRIC_ALGORITHMS,
    HMAC_ALGORITHMS,
    AssertionAuth,
)
from auth_service.oauth2.dpop import DPOP_ALGORITHMS
from auth_service.oauth2.errors import OAuthError, invalid_client, invalid_request
from auth_service.oauth2.lifecycle import OAuth2Runtime
from auth_service.oauth2.service import GRANT_TOKEN_EXCHANGE, GRANT_TYPES, ClientAuth, OAuthService


class RequestOnlyRoute(APIRoute):
    """A route whose endpoint takes only the Request: FastAPI's dependency solving is skipped.

    That machinery costs about as much as signing the token, so the token endpoint uses this;
    OpenAPI is still generated from the route as usual.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


router = APIRouter(tags=["oauth2"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_BODY = 16 * 1024
_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"


def _runtime(request: Request) -> OAuth2Runtime:
    runtime: OAuth2Runtime = request.app.state.oauth2
    return runtime


async def get_oauth_service(request: Request) -> OAuthService:
    # async def: a plain def dependency would cost a thread-pool hop on every token request.
    return _runtime(request).service


OAuthServiceDep = Annotated[OAuthService, Depends(get_oauth_service)]


def _error(exc: OAuthError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=exc.status_code,
        headers={**_NO_STORE, **exc.headers},
    )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys repeat is refused, not resolved by last-wins."""
    data = dict(pairs)
    if len(data) != len(pairs):
        raise ValueError("duplicate key")
    return data


async def _params(request: Request) -> dict[str, str]:
    """Form or JSON body as single-valued string parameters."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    try:
        body = await request.body()
    except ClientDisconnect as exc:  # the caller is gone; nothing to log as an error
        raise invalid_request("The request body was not received.") from exc
    if len(body) > _MAX_BODY:
        raise invalid_request("The request body is too large.")
    if media_type == _FORM:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise invalid_request("The form body is malformed.") from exc
    elif media_type == _JSON:
        try:
            data = json.loads(body, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as exc:  # RecursionError: pathological nesting
            raise invalid_request("The JSON body is malformed.") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise invalid_request("The JSON body must be an object of string values.")
        pairs = list(data.items())
    else:
        raise invalid_request(f"Send {_FORM} or {_JSON}.")
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            # §3.2 forbids repeating a parameter; unrecognised ones must be ignored (§3.1),
            # repeats included. Recognised = documented in one of our request bodies.
            if key in _recognised_parameters():
                raise invalid_request(f"Parameter {key!r} is repeated.")
            continue
        params[key] = value
    return params


def _recognised_parameters() -> frozenset[str]:
    return frozenset(_TOKEN_BODY["properties"]) | frozenset(_TOKEN_PARAM_BODY["properties"])


def _client_auth(request: Request, params: dict[str, str]) -> ClientAuth | AssertionAuth:
    """One of client_secret_basic, client_secret_post or a JWT assertion (RFC 6749 §2.3)."""
    form_id = params.pop("client_id", None)
    form_secret = params.pop("client_secret", None)
    header = request.headers.get("authorization")
    assertion_type = params.pop("client_assertion_type", None)
    assertion = params.pop("client_assertion", None)
    if assertion_type is not None or assertion is not None:
        if form_secret is not None or (header and header[:6].lower() == "basic "):
            raise invalid_request("Use one client authentication method, not two.")
        if assertion_type != ASSERTION_TYPE or not assertion:
            raise invalid_client()
        return AssertionAuth(assertion, form_id)
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            if form_secret is not None:
                raise invalid_request("Use one client authentication method, not two.")
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise invalid_client() from exc
            raw_id, sep, raw_secret = decoded.partition(":")
            if not sep:
                raise invalid_client()
            # §2.3.1: both parts are form-url-encoded before base64.
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
            if form_id is not None and form_id != client_id:
                raise invalid_request("client_id does not match the Basic credentials.")
            return ClientAuth(client_id, secret)
    if form_id and form_secret is not None:
        return ClientAuth(form_id, form_secret)
    raise invalid_client()


def _rate_limit(request: Request, name: str, client_id: str | None = None) -> None:
    """Per IP, and per client id when given; past the limit an RFC 6749-shaped 429."""
    key = f"{name}:{client_ip(request)}"
    if client_id is not None:
        # Bounded: the id is caller-supplied and may be anything up to the body limit.
        key = f"{name}:client:{client_id[:64]}"
    try:
        _runtime(request).limiter.hit(key)
    except RateLimited as exc:
        error = OAuthError(
            "rate_limited",
            "Too many requests. Retry after the number of seconds in Retry-After.",
            status_code=429,
            headers=exc.headers,
        )
        if trip_throttle.first(key):
            actor = Actor(ActorKind.CLIENT, client_id[:64] if client_id else None)
            error.audit_event = rate_limit_event(actor, name)
        raise error from None


async def _failed(request: Request, exc: OAuthError, client_id: str | None) -> JSONResponse:
    """The RFC 6749 answer; failed client authentication and limit trips are audited."""
    event = getattr(exc, "audit_event", None)
    if event is None and exc.error == "invalid_client":
        cid = client_id[:64] if client_id else None
        if trip_throttle.first(f"auth:{client_ip(request)}:{cid}"):
            event = AuditEvent(
                AuditAction.CLIENT_AUTH_FAILED,
                Actor(ActorKind.CLIENT, cid),
                Target("client", cid),
                Outcome.FAILED,
                {"endpoint": request.url.path},
            )
    if event is not None:
        await record_detached(request.app.state.session_factory, event)
    return _error(exc)


# One client authentication method per request: a secret and an assertion together are a 400.
_ONE_CLIENT_AUTH: dict[str, Any] = {
    "anyOf": [
        {"required": ["client_secret", "client_assertion"]},
        {"required": ["client_secret", "client_assertion_type"]},
    ]
}

_TOKEN_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["grant_type"],
    "not": _ONE_CLIENT_AUTH,
    # Unknown parameters are ignored (RFC 6749 §3.1), but every value is a string.
    "additionalProperties": {"type": "string"},
    "properties": {
        "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
        "scope": {"type": "string", "description": "Space-separated permission names."},
        "resource": {"type": "string", "description": "RFC 8707 target audience."},
        "audience": {"type": "string", "description": "Alias of resource."},
        "client_id": {"type": "string", "description": "client_secret_post only."},
        "client_secret": {"type": "string", "description": "client_secret_post only."},
        "client_assertion_type": {"type": "string", "enum": [ASSERTION_TYPE]},
        "client_assertion": {"type": "string", "description": "private_key_jwt, client_secret_jwt"},
        "subject_token": {"type": "string", "description": "Token exchange: a user's token."},
        "subject_token_type": {"type": "string"},
        "actor_token": {"type": "string"},
        "actor_token_type": {"type": "string"},
        "requested_token_type": {"type": "string"},
    },
}


# The 200 body, documented by hand: the route has no response_model (see RequestOnlyRoute).
_TOKEN_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "properties": {
        "access_token": {"type": "string", "description": "RFC 9068 JWT (typ at+jwt)."},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer", "description": "Lifetime in seconds."},
        "scope": {"type": "string", "description": "Space-separated granted permissions."},
    },
}
_OAUTH_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "RFC 6749 §5.2 error code."},
        "error_description": {"type": "string"},
    },
}


def _oauth_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "invalid_request, unsupported_grant_type, invalid_scope or invalid_target",
        401: "invalid_client (with WWW-Authenticate)",
        429: "Too many requests (Retry-After)",
    }
    return {
        code: {
            "description": descriptions[code],
            "content": {_JSON: {"schema": _OAUTH_ERROR}},
        }
        for code in codes
    }


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {_FORM: {"schema": schema}, _JSON: {"schema": schema}},
        }
    }


async def token(request: Request) -> Response:
    # No dependencies on the hot path: FastAPI's dependency solving costs more than the HMAC.
    service = _runtime(request).service
    claimed: str | None = None
    headers = _NO_STORE
    try:
        _rate_limit(request, "token")
        params = await _params(request)
        claimed = params.get("client_id")  # for limits and the audit log, even if refused
        auth = _client_auth(request, params)
        claimed = auth.client_id or claimed
        if claimed is not None:
            _rate_limit(request, "token", claimed)
        client = await service.authenticate(auth)
        cnf = None
        if client.dpop_bound or "dpop" in request.headers:
            cnf = await service.dpop_binding(client, request.headers.getlist("dpop"))
            nonces = service.dpop_nonces
            if nonces is not None:
                headers = {**_NO_STORE, "DPoP-Nonce": nonces.current()}
        if params.get("grant_type") == GRANT_TOKEN_EXCHANGE:
            exchange = _runtime(request).exchange
            body = await exchange.exchange(
                client, params, service.exchange_audience(client, params), cnf
            )
        else:
            body = service.issue(client, params, cnf)
    except OAuthError as exc:
        return await _failed(request, exc, claimed)
    return JSONResponse(body, headers=headers)


router.add_api_route(
    "/auth/token",
    token,
    methods=["POST"],
    route_class_override=RequestOnlyRoute,
    summary="OAuth2 token endpoint (client credentials, token exchange; DPoP)",
    openapi_extra=_body_doc(_TOKEN_BODY),
    responses={
        200: {
            "description": "An access token (Cache-Control: no-store)",
            "content": {_JSON: {"schema": _TOKEN_RESPONSE}},
        },
        **_oauth_responses(400, 401, 429),
    },
)

_OAUTH_ERRORS = _oauth_responses(400, 401, 429)

_TOKEN_PARAM_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["token"],
    "not": _ONE_CLIENT_AUTH,
    "additionalProperties": {"type": "string"},
    "properties": {
        "token": {"type": "string"},
        "token_type_hint": {"type": "string"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
        "client_assertion_type": {"type": "string", "enum": [ASSERTION_TYPE]},
        "client_assertion": {"type": "string"},
    },
}


async def introspect(request: Request) -> Response:
    # Like the token endpoint: no dependency solving, cached client authentication.
    service = _runtime(request).service
    claimed: str | None = None
    try:
        _rate_limit(request, "introspect")
        params = await _params(request)
        claimed = params.get("client_id")  # for limits and the audit log, even if refused
        auth = _client_auth(request, params)
        claimed = auth.client_id or claimed
        await service.authenticate(auth)
        token_value = params.get("token")
        if not token_value:
            raise invalid_request("Missing token.")
    except OAuthError as exc:
        return await _failed(request, exc, claimed)
    return JSONResponse(await service.introspect(token_value), headers=_NO_STORE)


router.add_api_route(
    "/auth/token/introspect",
    introspect,
    methods=["POST"],
    route_class_override=RequestOnlyRoute,
    summary="Token introspection (RFC 7662); requires client authentication",
    openapi_extra=_body_doc(_TOKEN_PARAM_BODY),
    responses=_OAUTH_ERRORS,
)


@router.post(
    "/auth/token/revoke",
    summary="Token revocation (RFC 7009); a client may revoke only its own tokens",
    openapi_extra=_body_doc(_TOKEN_PARAM_BODY),
    responses=_OAUTH_ERRORS,
)
async def revoke(request: Request, service: OAuthServiceDep) -> Response:
    claimed: str | None = None
    try:
        _rate_limit(request, "revoke")
        params = await _params(request)
        claimed = params.get("client_id")  # for limits and the audit log, even if refused
        auth = _client_auth(request, params)
        claimed = auth.client_id or claimed
        client = await service.authenticate(auth)
        token_value = params.get("token")
        if not token_value:
            raise invalid_request("Missing token.")
    except OAuthError as exc:
        return await _failed(request, exc, claimed)
    jti = await service.revoke(client, token_value)
    if jti is not None:
        # No request transaction on the OAuth endpoints: the event is its own.
        event = AuditEvent(
            AuditAction.TOKEN_REVOKE, Actor(ActorKind.CLIENT, str(client.id)), Target("token", jti)
        )
        await record_detached(request.app.state.session_factory, event)
    return Response(status_code=200, headers=_NO_STORE)


@router.get("/.well-known/jwks.json", summary="Public signing keys (JWK Set)")
async def jwks(request: Request) -> Response:
    # Short cache: verifiers also refetch on an unknown kid, so rotation never waits on this.
    return JSONResponse(
        _runtime(request).keys.ring.jwks, headers={"Cache-Control": "public, max-age=300"}
    )


def server_metadata(settings: Settings) -> dict[str, Any]:
    """RFC 8414 metadata; the issuer follows the served URL unless TOKEN_ISSUER is set."""
    issuer = settings.issuer.rstrip("/")
    methods = ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"]
    signing_algs = [*ASYMMETRIC_ALGORITHMS, *HMAC_ALGORITHMS]
    return {
        "issuer": settings.issuer,
        "token_endpoint": f"{issuer}/auth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/auth/token/introspect",
        "revocation_endpoint": f"{issuer}/auth/token/revoke",
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": signing_algs,
        "introspection_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_signing_alg_values_supported": signing_algs,
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
    }


_METADATA_CACHE = {"Cache-Control": "public, max-age=300"}


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="Authorization server metadata (RFC 8414)",
)
async def metadata(request: Request) -> Response:
    return JSONResponse(server_metadata(request.app.state.settings), headers=_METADATA_CACHE)


@router.get(
    "/.well-known/openid-configuration",
    summary="The same metadata at the OpenID Connect discovery address",
    description="Served because many OAuth libraries probe this address first. This is an"
    " OAuth 2.0 authorization server for machine clients, not an OpenID provider: there is"
    " no authorization_endpoint, no userinfo_endpoint and no ID token (machine tokens have"
    " no end user). `subject_types_supported` is `public` (sub is the client id).",
)
async def openid_configuration(request: Request) -> Response:
    body = {**server_metadata(request.app.state.settings), "subject_types_supported": ["public"]}
    return JSONResponse(body, headers=_METADATA_CACHE)
