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
