"""Where the GoTrue contract comes from on a fresh clone: shared copy, cache, pinned download."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.contracts import ContractUnavailable, gotrue_spec
from tests.support.live import free_port, serve_in_thread

BODY = b"openapi: 3.0.0\ninfo: {title: pinned}\n"
PIN = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[str]]]:
    """A loopback 'raw.githubusercontent.com' that records each download."""
    hits: list[str] = []

    async def spec(request: Request) -> Response:
        hits.append(request.url.path)
        body = b"tampered" if request.url.path.endswith("bad.yaml") else BODY
        return Response(body, media_type="text/yaml")

    app = Starlette(routes=[Route("/{name}", spec)])
    with serve_in_thread(app, free_port(), name="contract-upstream") as url:
        yield url, hits


def test_missing_shared_copy_is_downloaded_once_into_the_cache(
    tmp_path: Path, upstream: tuple[str, list[str]]
) -> None:
    url, hits = upstream
    args = {"shared": tmp_path / "absent.yaml", "cache_dir": tmp_path / "cache", "sha256": PIN}
    assert gotrue_spec(url=f"{url}/openapi.yaml", **args) == BODY
    assert gotrue_spec(url=f"{url}/openapi.yaml", **args) == BODY
    assert hits == ["/openapi.yaml"]  # the second call read the cache
    assert list((tmp_path / "cache").iterdir()) == [
        tmp_path / "cache" / f"gotrue-openapi-{PIN[:12]}.yaml"
    ]


def test_a_shared_copy_with_the_pinned_checksum_is_used_without_download(
    tmp_path: Path, upstream: tuple[str, list[str]]
) -> None:
    url, hits = upstream
    shared = tmp_path / "gotrue-openapi.yaml"
    shared.write_bytes(BODY)
    assert gotrue_spec(shared=shared, cache_dir=tmp_path / "c", url=f"{url}/x", sha256=PIN) == BODY
    assert hits == []


def test_a_download_with_the_wrong_checksum_is_refused_and_not_cached(
    tmp_path: Path, upstream: tuple[str, list[str]]
) -> None:
    url, _ = upstream
    with pytest.raises(ContractUnavailable, match="does not match the pinned sha256"):
        gotrue_spec(
            shared=tmp_path / "absent", cache_dir=tmp_path / "c", url=f"{url}/bad.yaml", sha256=PIN
        )
    assert not (tmp_path / "c").exists()


def test_without_copy_or_network_the_failure_is_one_line_naming_both_paths(
    tmp_path: Path,
) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/openapi.yaml"
    with pytest.raises(ContractUnavailable) as excinfo:
        gotrue_spec(shared=tmp_path / "absent", cache_dir=tmp_path / "c", url=unreachable)
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(tmp_path / "absent") in message
    assert "download" in message
