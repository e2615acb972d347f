"""The GoTrue OpenAPI contract: beside the repository, or a pinned, checksummed download.

Lookup order: `../shared/contracts/gotrue-openapi.yaml` (our CI machine), then the git-ignored
cache `.cache/contracts/`, then a download of the pinned upstream file (the same URL and
sha256 as .github/workflows/ci.yml) into that cache. Every copy is checked against the pin.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
SHARED_SPEC = ROOT.parent / "shared" / "contracts" / "gotrue-openapi.yaml"
CACHE_DIR = ROOT / ".cache" / "contracts"
SPEC_URL = (
    "https://raw.githubusercontent.com/supabase/auth/"
    "bc32168e13fdc928c98b449fc76bc3fdb9a293c5/openapi.yaml"
)
SPEC_SHA256 = "2e2a74a7459f377dd37e1c0e4c926e39a5be9e6a140fcf6dc1fd0c3ec8a0e621"


class ContractUnavailable(Exception):
    """Neither a local copy nor the download worked; the message is one line."""


def _matches(data: bytes, sha256: str) -> bool:
    return hashlib.sha256(data).hexdigest() == sha256


def gotrue_spec(
    *,
    shared: Path = SHARED_SPEC,
    cache_dir: Path = CACHE_DIR,
    url: str = SPEC_URL,
    sha256: str = SPEC_SHA256,
    timeout: float = 20.0,
) -> bytes:
    """The pinned contract's bytes, downloading it once into `cache_dir` when needed."""
    cached = cache_dir / f"gotrue-openapi-{sha256[:12]}.yaml"
    for path in (shared, cached):
        if path.is_file():
            data = path.read_bytes()
            if _matches(data, sha256):
                return data
    failure: str | None = None
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        failure = type(exc).__name__
    if failure is not None:  # raised outside the handler: one line, no chained exceptions
        raise ContractUnavailable(
            f"GoTrue contract not found at {shared} or {cached}, and the download of {url}"
            f" failed ({failure}); put the file at either path (sha256 {sha256})"
        )
    if not _matches(response.content, sha256):
        raise ContractUnavailable(
            f"GoTrue contract downloaded from {url} does not match the pinned sha256 {sha256}"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".part")
    partial.write_bytes(response.content)
    partial.replace(cached)
    return response.content
