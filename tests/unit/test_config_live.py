"""Config keys of the feed, callbacks, metrics and logs."""

from datetime import timedelta

import pytest

from giobba_server.config import ConfigError, build_config


def test_defaults() -> None:
    config = build_config({})
    assert config.feed_retention == 100_000
    assert config.metrics_listen == ""
    assert config.log_format == "text"
    assert config.callbacks.secret == "" and config.callbacks.max_attempts == 8


def test_values() -> None:
    config = build_config(
        {
            "feed": {"retention": 500},
            "metrics": {"listen": "127.0.0.1:9464"},
            "log": {"format": "JSON", "level": "debug"},
            "callbacks": {
                "secret": "s3cr3t",
                "maxAttempts": 3,
                "readTimeout": "2s",
                "retryBase": 0.5,
            },
        }
    )
    assert config.feed_retention == 500
    assert config.metrics_listen == "127.0.0.1:9464"
    assert (config.log_format, config.log_level) == ("json", "DEBUG")
    assert config.callbacks.max_attempts == 3
    assert config.callbacks.read_timeout == timedelta(seconds=2)
    assert config.callbacks.retry_base == timedelta(seconds=0.5)
    assert "s3cr3t" not in repr(config)  # the secret stays out of reprs (and so of logs)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"feed": {"retention": 3}}, "feed.retention"),
        ({"feed": {"keep": 3}}, "feed.keep"),
        ({"metrics": {"listen": "nope"}}, "metrics.listen"),
        ({"log": {"format": "xml"}}, "log.format"),
        ({"callbacks": {"maxAttempts": 0}}, "callbacks.maxAttempts"),
        ({"callbacks": {"readTimeout": "soon"}}, "callbacks.readTimeout"),
        ({"callbacks": {"url": "x"}}, "callbacks.url"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(raw)
    assert caught.value.key == key
