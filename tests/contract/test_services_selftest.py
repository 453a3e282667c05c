"""The real-service harness works: Redis and the MongoDB-wire server answer.

These tests use no skip of their own: under ``CI=true`` the fixtures fail
them when a service is missing, so CI can't go green without the services.
"""

from __future__ import annotations

import pymongo
import pytest
import redis.asyncio as aioredis

from tests.support.services import LOOPBACK, MongoServer, RedisServer


async def _redis_round_trip(url: str, key: str) -> tuple[bool, bytes | str | None]:
    client = aioredis.Redis.from_url(url)
    try:
        pong = await client.ping()
        await client.set(key, b"value")
        got = await client.get(key)
    finally:
        await client.aclose()
    return bool(pong), got


def _mongo_client(url: str) -> pymongo.MongoClient[dict[str, object]]:
    return pymongo.MongoClient(url, serverSelectionTimeoutMS=10_000)


@pytest.mark.redis
async def test_redis_round_trip(clean_redis: RedisServer) -> None:
    assert clean_redis.url == f"redis://{LOOPBACK}:{clean_redis.port}/0"
    assert await _redis_round_trip(clean_redis.url, "selftest") == (True, b"value")


@pytest.mark.redis
async def test_redis_restart_keeps_port_and_drops_data(clean_redis: RedisServer) -> None:
    port = clean_redis.port
    assert await _redis_round_trip(clean_redis.url, "before-restart") == (True, b"value")
    clean_redis.restart()
    assert clean_redis.port == port
    client = aioredis.Redis.from_url(clean_redis.url)
    try:
        assert await client.get("before-restart") is None
    finally:
        await client.aclose()


@pytest.mark.mongo
def test_mongo_round_trip(mongo_server: MongoServer, mongo_database: str) -> None:
    client = _mongo_client(mongo_server.url)
    try:
        tasks = client[mongo_database]["tasks"]
        tasks.create_index([("state", pymongo.ASCENDING), ("priority", pymongo.DESCENDING)])
        tasks.insert_one({"_id": "t1", "state": "queued", "priority": 1})
        assert tasks.find_one({"state": "queued"}) == {
            "_id": "t1",
            "state": "queued",
            "priority": 1,
        }
        result = tasks.update_one({"_id": "t1", "state": "queued"}, {"$set": {"state": "done"}})
        assert result.modified_count == 1
        assert [d["_id"] for d in tasks.find({"state": "done"})] == ["t1"]
        assert tasks.delete_many({}).deleted_count == 1
    finally:
        client.close()


@pytest.mark.mongo
def test_mongo_stop_start_keeps_port_and_data(stoppable_mongo: MongoServer) -> None:
    mongo_server, mongo_database = stoppable_mongo, MongoServer.database_name()
    assert mongo_server.can_stop
    port = mongo_server.port
    client = _mongo_client(mongo_server.url)
    try:
        client[mongo_database]["kept"].insert_one({"_id": 1})
        mongo_server.stop()
        assert not mongo_server.is_running
        mongo_server.start()
        assert mongo_server.port == port
        # The same client reconnects by itself once the server is back.
        assert client[mongo_database]["kept"].find_one({"_id": 1}) == {"_id": 1}
    finally:
        client.close()
