"""Request and response bodies of the app-client admin API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, WithJsonSchema

from auth_service.clients.keys import (
    JWKS_URI_PATTERN,
    KEYLESS_METHODS,
    MAX_KEYS,
    PRIVATE_MEMBERS,
    PUBLIC_KTY,
)

# What the schema promises must be what we accept: no NUL (PostgreSQL cannot store it), and
# at least one character that survives the whitespace strip (Python's and JSON Schema's
# notions of whitespace differ, hence the explicit class).
_VISIBLE = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"
ClientName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_VISIBLE)
]
Audience = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255, pattern=_VISIBLE)
]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
AuthMethod = Literal[
    "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"
]
# The schema says what validate_jwks_uri checks (keys.py); the check itself stays there so a
# bad value is 422 invalid_client_keys, like every other key rule.
JwksUri = Annotated[
    str,
    StringConstraints(max_length=2048),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 2048,
            "pattern": JWKS_URI_PATTERN,
            "description": "An absolute https URL (http is accepted outside production).",
        }
    ),
]
# A JWK Set of public keys, as far as JSON Schema can say it. That each key also parses (an
# RSA modulus, an EC point on its curve) is checked on registration: 422 invalid_client_keys.
Jwks = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "required": ["keys"],
            "properties": {
                "keys": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_KEYS,
                    "items": {
                        "type": "object",
                        "required": ["kty"],
                        "properties": {"kty": {"enum": sorted(PUBLIC_KTY)}},
                        "not": {"anyOf": [{"required": [m]} for m in sorted(PRIVATE_MEMBERS)]},
                    },
                }
            },
        }
    ),
]
_NULL: dict[str, Any] = {"type": "null"}
# Which methods take keys, in the schema (the service enforces the same, 422
# invalid_client_keys): secret methods none; private_key_jwt exactly one of jwks or jwks_uri.
_KEYS_BY_METHOD: dict[str, Any] = {
    "anyOf": [
        {
            "properties": {
                "token_endpoint_auth_method": {"enum": list(KEYLESS_METHODS)},
                "jwks": _NULL,
                "jwks_uri": _NULL,
            }
        },
        {
            "required": ["token_endpoint_auth_method", "jwks"],
            "properties": {
                "token_endpoint_auth_method": {"const": "private_key_jwt"},
                "jwks": {"type": "object"},
                "jwks_uri": _NULL,
            },
        },
        {
            "required": ["token_endpoint_auth_method", "jwks_uri"],
            "properties": {
                "token_endpoint_auth_method": {"const": "private_key_jwt"},
                "jwks": _NULL,
                "jwks_uri": {"type": "string"},
            },
        },
    ]
}


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_KEYS_BY_METHOD)

    name: ClientName
    description: Description | None = None
    allowed_audiences: list[Audience] = Field(default_factory=list, max_length=50)
    is_active: StrictBool = True  # "false" or 0 is a type error, not a silent coercion
    token_endpoint_auth_method: AuthMethod = Field(
        default="client_secret_basic",
        description="The only client authentication method accepted for this client"
        " (client_secret_basic and client_secret_post are interchangeable).",
    )
    jwks: Jwks | None = Field(
        default=None, description="private_key_jwt: inline JWK Set of public keys."
    )
    jwks_uri: JwksUri | None = Field(
        default=None, description="private_key_jwt: URL of the client's JWK Set (https)."
    )
    dpop_bound_access_tokens: StrictBool = Field(
        default=False, description="Refuse token requests without a DPoP proof (RFC 9449)."
    )


class ClientKeys(BaseModel):
    """A private_key_jwt client's new keys: `jwks` or `jwks_uri`, or neither (keys unchanged).

    A client that authenticates with a secret takes no keys (409 `client_has_no_keys`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [{"properties": {"jwks": _NULL}}, {"properties": {"jwks_uri": _NULL}}]
        },
    )

    jwks: Jwks | None = None
    jwks_uri: JwksUri | None = None
    dpop_bound_access_tokens: StrictBool | None = Field(
        default=None, description="Omitted: unchanged."
    )


class ClientUpdate(BaseModel):
    """Full replacement (PUT): omitted optional fields take their defaults."""

    model_config = ConfigDict(extra="forbid")

    name: ClientName
    description: Description | None = None
    allowed_audiences: list[Audience] = Field(default_factory=list, max_length=50)
    is_active: StrictBool = True  # "false" or 0 is a type error, not a silent coercion


class RoleRef(BaseModel):
    id: uuid.UUID
    name: str


class ClientRead(BaseModel):
    client_id: uuid.UUID
    name: str
    description: str | None
    allowed_audiences: list[str]
    is_active: bool
    roles: list[RoleRef]
    token_endpoint_auth_method: AuthMethod
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    dpop_bound_access_tokens: bool
    secret_rotation_grace_until: datetime | None = Field(
        description="Until when the previous secret is still accepted, if a rotation is pending."
    )
    created_at: datetime
    updated_at: datetime


class ClientCreated(ClientRead):
    client_secret: str | None = Field(
        description="Shown only once. Store it now. None for private_key_jwt clients."
    )


class ClientPage(BaseModel):
    items: list[ClientRead]
    total: int
    limit: int
    offset: int


class SecretRotated(BaseModel):
    client_id: uuid.UUID
    client_secret: str = Field(description="Shown only once. Store it now.")
    previous_secret_expires_at: datetime
