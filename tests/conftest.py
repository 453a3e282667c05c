"""Shared fixtures: the real services (redis-server, MongoDB-wire) and an embedded stack."""

from tests.support.fixtures import (
    clean_redis,
    mongo_database,
    mongo_server,
    redis_server,
    stoppable_mongo,
)

__all__ = ["clean_redis", "mongo_database", "mongo_server", "redis_server", "stoppable_mongo"]
