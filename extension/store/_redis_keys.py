"""Names and scripts of the `redis` backend in one place: settings, key names, Lua scripts."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ACQUIRE_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] or v == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RENEW_SCRIPT = """
local held = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    held[#held + 1] = i
  end
end
return held
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class RedisSettings:
    """Connection settings from one URL: `redis://[:password@]host:port/db?prefix=dr:`."""

    url: str
    prefix: str = "deepresearch:"

    @classmethod
    def from_url(cls, url: str) -> RedisSettings:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        prefix = query.pop("prefix", "deepresearch:")
        clean = urlunsplit(parts._replace(query=urlencode(query)))
        return cls(url=clean, prefix=prefix)

    def display(self) -> str:
        """The URL without a password, for messages and `GET health`."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc, query=""))


class Keys:
    """Every key name the backend uses, in one place."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tasks = f"{prefix}tasks"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}"

    def events(self, task_id: str) -> str:
        return f"{self.prefix}events:{task_id}"

    def checkpoints(self, task_id: str) -> str:
        return f"{self.prefix}ckpt:{task_id}"

    def lease(self, task_id: str) -> str:
        return f"{self.prefix}lease:{task_id}"

    def control(self, task_id: str) -> str:
        return f"{self.prefix}control:{task_id}"

    def of(self, task_id: str) -> list[str]:
        """Every key of one task."""
        return [
            self.task(task_id),
            self.events(task_id),
            self.checkpoints(task_id),
            self.lease(task_id),
            self.control(task_id),
        ]


# Create: KEYS task, index, lease; ARGV created-score, id, lease owner ('' for none), lease ms,
# then the hash's field/value pairs.
CREATE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4]) end
return 1
"""
# Flush one task: KEYS task, events; ARGV n, then n x (entry id, type, data), then the hash's
# pairs. Only while the task exists (a delete elsewhere must not be undone); an entry id at or
# below the stream's top was written by an earlier attempt whose reply was lost, so skip it.
FLUSH_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[1])
local i = 2
for _ = 1, n do
  redis.pcall('XADD', KEYS[2], ARGV[i], 't', ARGV[i + 1], 'd', ARGV[i + 2])
  i = i + 3
end
redis.call('HSET', KEYS[1], unpack(ARGV, i))
return 1
"""
