"""Health, and the database going away: ``service_unavailable`` rather than a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from avatarium import __version__
from avatarium.app import create_app
from tests.conftest import make_settings
from tests.support import Api, assert_error


async def test_health_reports_each_check(api: Api) -> None:
    for path in ("/health", "/v1/health"):
        response = await api.client.get(path)
        assert response.status_code == 200
        assert response.json() == {
            "status": "ok",
            "version": __version__,
            "checks": {"database": "ok", "rate_limiter": "ok"},
        }


@pytest.fixture
async def dead_db_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # Nothing listens on port 1: every connection attempt is refused at once.
    settings = make_settings(tmp_path, "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    app = create_app(settings, migrate=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def test_unreachable_database_is_service_unavailable(
    dead_db_client: httpx.AsyncClient,
) -> None:
    health = await dead_db_client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert health.json()["checks"]["database"] == "unavailable"
    response = await dead_db_client.get(
        "/v1/conversations", headers={"Authorization": "Bearer av_test_" + "a" * 32}
    )
    assert_error(response, 503, "service_unavailable")
    # Public endpoints that need no database keep working.
    assert (await dead_db_client.get("/v1/avatars")).status_code == 200


async def test_liveness_and_readiness(api: Api) -> None:
    live = await api.client.get("/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "not_configured", "audio_store": "ok"},
    }
    assert ready.headers["x-request-id"].startswith("req_")


async def test_readiness_fails_while_liveness_holds(
    dead_db_client: httpx.AsyncClient,
) -> None:
    assert (await dead_db_client.get("/health/live")).status_code == 200
    ready = await dead_db_client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["checks"]["database"] == "failed"


async def test_readiness_names_redis_and_the_audio_store(tmp_path: Path) -> None:
    # Nothing listens on port 1: Redis is configured but does not answer.
    settings = make_settings(tmp_path, None, redis_url="redis://127.0.0.1:1/0")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {
                "database": "ok", "redis": "failed", "audio_store": "ok",
            }  # fmt: skip
            (tmp_path / "audio").rmdir()  # the audio directory went away (an unmounted disk)
            ready = await client.get("/health/ready")
            assert ready.json()["checks"]["audio_store"] == "failed"
