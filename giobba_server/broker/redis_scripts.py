"""The Lua scripts behind RedisBroker and RedisFeed, and how they are run.

Each broker script is one atomic step on ONE queue. Every script gets the same six keys,
all carrying the queue's hash tag, so a script never touches a key it was not given and
runs unchanged on Redis Cluster (all of a queue's keys live in one slot):

    KEYS[1] giobba:{q}:tasks     HASH  task id -> JSON record (see below)
    KEYS[2] giobba:{q}:ready     ZSET  score 0, member "PP" + "%020d" seq + ":" + id, so
                                       lexicographic order = priority desc, then FIFO;
                                       exact for any int64 seq (a float score is not)
    KEYS[3] giobba:{q}:delayed   ZSET  id by eta_ms (held back until due)
    KEYS[4] giobba:{q}:leases    ZSET  id by lease deadline_ms (running tasks)
    KEYS[5] giobba:{q}:expiries  ZSET  id by expires_ms (pending tasks that can expire)
    KEYS[6] giobba:{q}:cancels   HASH  worker id -> JSON {task id: reason} owed to it

ARGV[1] is always the server's clock (epoch ms, from Python: lease deadlines are judged
on the servers' clocks, never the workers'), ARGV[2] the queue's wake-up channel.

A record holds strings only except the version, because Lua numbers are doubles and
cjson prints them with 14 significant digits: seq lives only inside the ready member,
and epoch-ms values (13 digits) are compared with tonumber, which is exact.
Fields: p priority, m ready member, e eta, x expires ('' = never), h holds (csv),
v version, w where (ready|delayed|held|running), t token, k worker, d lease deadline.
"""

import asyncio
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from giobba_server.domain.errors import Unavailable

_PRELUDE = """
-- The helpers below act on the queue chosen by use(i): its six keys are KEYS[6i-5..6i].
local TASKS, READY, DELAYED, LEASES, EXPIRIES, CANCELS
local function use(i)
  local b = (i - 1) * 6
  TASKS, READY, DELAYED, LEASES, EXPIRIES, CANCELS =
    KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4], KEYS[b + 5], KEYS[b + 6]
end
use(1)
local NOW = tonumber(ARGV[1])
local CHANNEL = ARGV[2]

local function load(id)
  local raw = redis.call('HGET', TASKS, id)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function save(id, rec)
  redis.call('HSET', TASKS, id, cjson.encode(rec))
end

local function unplace(id, rec)
  redis.call('ZREM', READY, rec.m)
  redis.call('ZREM', DELAYED, id)
  redis.call('ZREM', LEASES, id)
  redis.call('ZREM', EXPIRIES, id)
end

-- Put a pending record where it belongs; true when a claim may now or later find it.
local function place(id, rec)
  rec.t, rec.k, rec.d = '', '', ''
  redis.call('ZREM', LEASES, id)
  local claimable = true
  if rec.h ~= '' then
    rec.w = 'held'
    claimable = false
  elseif tonumber(rec.e) > NOW then
    rec.w = 'delayed'
    redis.call('ZADD', DELAYED, rec.e, id)
  else
    rec.w = 'ready'
    redis.call('ZADD', READY, 0, rec.m)
  end
  if rec.x ~= '' then redis.call('ZADD', EXPIRIES, rec.x, id) end
  save(id, rec)
  return claimable
end

local function running(id, token)
  local rec = load(id)
  if not rec or rec.w ~= 'running' or token == '' or rec.t ~= token then return nil end
  return rec
end

local function promote()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', DELAYED, '-inf', ARGV[1])) do
    redis.call('ZREM', DELAYED, id)
    local rec = load(id)
    if rec and rec.w == 'delayed' then
      rec.w = 'ready'
      redis.call('ZADD', READY, 0, rec.m)
      save(id, rec)
    end
  end
end
"""

# ARGV[3] '1' = restore (skip known ids), ARGV[4] count, then 9 fields per entry:
# id, priority, member, eta, expires, holds, version, running token, worker.
ADD = """
local restore, n, added, wake = ARGV[3] == '1', tonumber(ARGV[4]), 0, false
for i = 0, n - 1 do
  local b = 5 + i * 9
  local id = ARGV[b]
  local old = load(id)
  if not (restore and old) then
    if old then unplace(id, old) end
    local rec = {p = ARGV[b + 1], m = ARGV[b + 2], e = ARGV[b + 3], x = ARGV[b + 4],
                 h = ARGV[b + 5], v = tonumber(ARGV[b + 6]), w = '', t = '', k = '', d = ''}
    if ARGV[b + 7] ~= '' then
      -- restored as RUNNING: the lease carries on, its deadline passed as the eta
      rec.w, rec.t, rec.k, rec.d = 'running', ARGV[b + 7], ARGV[b + 8], rec.e
      redis.call('ZADD', LEASES, rec.d, id)
      save(id, rec)
    elseif place(id, rec) then
      wake = true
    end
    added = added + 1
  end
end
if wake then redis.call('PUBLISH', CHANNEL, '1') end
return added
"""

# Promote due ETA tasks, then list up to ARGV[3] ready heads (for a cross-queue claim).
# Expired heads are set aside as CLAIM would, so they cannot crowd out the choice.
# Returns {{member...}, {expired id...}}.
PEEK = """
promote()
local limit = tonumber(ARGV[3])
local heads, expired, after = {}, {}, '-'
while #heads < limit do
  local head = redis.call('ZRANGEBYLEX', READY, after, '+', 'LIMIT', 0, 1)[1]
  if not head then break end
  local id = string.sub(head, 24)
  local rec = load(id)
  if rec and rec.x ~= '' and tonumber(rec.x) <= NOW then
    redis.call('ZREM', READY, head)
    rec.w = 'held'
    save(id, rec)
    table.insert(expired, id)
  else
    table.insert(heads, head)
    after = '(' .. head
  end
end
return {heads, expired}
"""

# ARGV[3] limit, ARGV[4] upper lex bound ('+' or '[member'), ARGV[5] lease deadline,
# ARGV[6] worker, ARGV[7] token prefix (random per call; tokens are prefix-N).
# Returns {{member, token, version}...}, {expired id...}.
CLAIM = """
promote()
local limit, bound, deadline, worker = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local claims, expired = {}, {}
while #claims < limit do
  local head = redis.call('ZRANGEBYLEX', READY, '-', bound, 'LIMIT', 0, 1)[1]
  if not head then break end
  redis.call('ZREM', READY, head)
  local id = string.sub(head, 24)
  local rec = load(id)
  if rec and rec.w == 'ready' then
    if rec.x ~= '' and tonumber(rec.x) <= NOW then
      rec.w = 'held' -- stays live (and due in EXPIRIES) until the service revokes it
      save(id, rec)
      table.insert(expired, id)
    else
      local token = ARGV[7] .. '-' .. (#claims + 1)
      rec.w, rec.t, rec.k, rec.d, rec.v = 'running', token, worker, deadline, rec.v + 1
      redis.call('ZADD', LEASES, deadline, id)
      redis.call('ZREM', EXPIRIES, id)
      save(id, rec)
      table.insert(claims, {head, token, rec.v})
    end
  end
end
return {claims, expired}
"""

# Standalone Redis: one atomic claim across several queues, KEYS holding six keys per
# queue. ARGV[3] limit, ARGV[4] lease deadline, ARGV[5] worker, ARGV[6] token prefix.
# Returns {{queue index, id, token, version}...} in claim order, {{queue index, id}...}.
CLAIM_ALL = """
-- Lua's '<' on strings uses strcoll (Redis sets a locale): compare the fixed-width
-- digits as numbers (two exact chunks) and the id byte by byte, as ZRANGEBYLEX does.
local function before(a, b)
  local x, y = tonumber(string.sub(a, 1, 12)), tonumber(string.sub(b, 1, 12))
  if x ~= y then return x < y end
  x, y = tonumber(string.sub(a, 13, 22)), tonumber(string.sub(b, 13, 22))
  if x ~= y then return x < y end
  for k = 23, math.min(#a, #b) do
    local p, q = string.byte(a, k), string.byte(b, k)
    if p ~= q then return p < q end
  end
  return #a < #b
end
local limit, deadline, worker = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local heads = {}
for i = 1, #KEYS / 6 do
  use(i)
  promote()
  heads[i] = redis.call('ZRANGE', READY, 0, 0)[1] or false
end
local claims, expired = {}, {}
while #claims < limit do
  local best = nil
  for i, head in ipairs(heads) do
    if head and (not best or before(head, heads[best])) then best = i end
  end
  if not best then break end
  use(best)
  local member = heads[best]
  redis.call('ZREM', READY, member)
  heads[best] = redis.call('ZRANGE', READY, 0, 0)[1] or false
  local id = string.sub(member, 24)
  local rec = load(id)
  if rec and rec.w == 'ready' then
    if rec.x ~= '' and tonumber(rec.x) <= NOW then
      rec.w = 'held' -- stays live (and due in EXPIRIES) until the service revokes it
      save(id, rec)
      table.insert(expired, {best, id})
    else
      local token = ARGV[6] .. '-' .. (#claims + 1)
      rec.w, rec.t, rec.k, rec.d, rec.v = 'running', token, worker, deadline, rec.v + 1
      redis.call('ZADD', LEASES, deadline, id)
      redis.call('ZREM', EXPIRIES, id)
      save(id, rec)
      table.insert(claims, {best, id, token, rec.v})
    end
  end
end
return {claims, expired}
"""

# ARGV[3] worker, ARGV[4] new deadline, then id, token pairs.
# Returns {renewed ids}, {ids whose lease is not current}, JSON of cancels owed ('' none).
RENEW = """
local renewed, lost = {}, {}
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local rec = running(id, ARGV[i + 1])
  if rec then
    rec.d = ARGV[4]
    redis.call('ZADD', LEASES, rec.d, id)
    save(id, rec)
    table.insert(renewed, id)
  else
    table.insert(lost, id)
  end
end
local owed = redis.call('HGET', CANCELS, ARGV[3])
if owed then redis.call('HDEL', CANCELS, ARGV[3]) else owed = '' end
return {renewed, lost, owed}
"""

# ARGV[3] id, ARGV[4] token. RUNNING -> gone; returns {version, worker} or nil.
FINISH = """
local rec = running(ARGV[3], ARGV[4])
if not rec then return false end
redis.call('HDEL', TASKS, ARGV[3])
redis.call('ZREM', LEASES, ARGV[3])
return {rec.v + 1, rec.k}
"""

# ARGV[3] id, ARGV[4] token, ARGV[5] eta ('' = release: due now, keeping its seq).
REQUEUE = """
local rec = running(ARGV[3], ARGV[4])
if not rec then return false end
local worker = rec.k
if ARGV[5] ~= '' then
  rec.e = ARGV[5]
elseif tonumber(rec.e) > NOW then
  rec.e = ARGV[1]
end
rec.v = rec.v + 1
if place(ARGV[3], rec) then redis.call('PUBLISH', CHANNEL, '1') end
return {rec.v, worker}
"""

# ARGV[3] id. PENDING -> gone; returns {1, version} or {0} when running or unknown.
REVOKE = """
local rec = load(ARGV[3])
if not rec or rec.w == 'running' then return {0} end
unplace(ARGV[3], rec)
redis.call('HDEL', TASKS, ARGV[3])
return {1, rec.v + 1}
"""

# ARGV[3] id, ARGV[4] hold. Returns {version, ''} or nil.
UNHOLD = """
local rec = load(ARGV[3])
if not rec or rec.w == 'running' then return false end
local kept, found = {}, false
for hold in string.gmatch(rec.h, '[^,]+') do
  if hold == ARGV[4] then found = true else table.insert(kept, hold) end
end
if not found then return false end
rec.h = table.concat(kept, ',')
rec.v = rec.v + 1
if place(ARGV[3], rec) then redis.call('PUBLISH', CHANNEL, '1') end
return {rec.v, ''}
"""

# ARGV[3] id. RUNNING -> gone, lease fenced, cancellation owed to the worker.
KILL = """
local rec = load(ARGV[3])
if not rec or rec.w ~= 'running' then return false end
redis.call('HDEL', TASKS, ARGV[3])
redis.call('ZREM', LEASES, ARGV[3])
local raw = redis.call('HGET', CANCELS, rec.k)
local owed = raw and cjson.decode(raw) or {}
owed[ARGV[3]] = 'KILLED'
redis.call('HSET', CANCELS, rec.k, cjson.encode(owed))
return {rec.v + 1, rec.k}
"""

# ARGV[3] limit. Leases past their deadline: flat {id, token, worker, ...}.
EXPIRED = """
local out = {}
local ids = redis.call('ZRANGEBYSCORE', LEASES, '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do
  local rec = load(id)
  if rec then
    table.insert(out, id)
    table.insert(out, rec.t)
    table.insert(out, rec.k)
  end
end
return out
"""

# The activity feed: KEYS[1] stream, KEYS[2] the last trimmed id. ARGV[1] retention,
# ARGV[2] slack, ARGV[3] pub/sub channel, then (entry JSON, announcement prefix) pairs.
# The announcement gets the event's cursor appended: ms * 2^20 + seq, computed in two
# halves because it exceeds 2^53 and Lua numbers are doubles.
FEED_PUBLISH = """
local function cursor(id)
  local dash = string.find(id, '-', 1, true)
  local ms = tonumber(string.sub(id, 1, dash - 1))
  local seq = tonumber(string.sub(id, dash + 1))
  local lo = ms % 10000000
  local hi = (ms - lo) / 10000000
  local low = lo * 1048576 + seq
  local carry = math.floor(low / 10000000)
  local high = hi * 1048576 + carry
  low = low - carry * 10000000
  if high == 0 then return string.format('%d', low) end
  return string.format('%d%07d', high, low)
end
for i = 4, #ARGV, 2 do
  local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  redis.call('PUBLISH', ARGV[3], ARGV[i + 1] .. cursor(id) .. '}}')
end
local retention, slack = tonumber(ARGV[1]), tonumber(ARGV[2])
local len = redis.call('XLEN', KEYS[1])
if len > retention + slack then
  -- Trim exactly, remembering the newest dropped id: a reader's cursor older than
  -- that has missed events, one at or after it has not.
  local cut = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - retention)
  local last = cut[#cut][1]
  local keep = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 1)[1][1]
  redis.call('XTRIM', KEYS[1], 'MINID', keep)
  redis.call('SET', KEYS[2], last)
end
return len
"""

# Registry: KEYS[1] statuses hash, KEYS[2] expiry zset; ARGV[1] now. Drop stale, list.
REGISTRY_ALIVE = """
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(stale) do redis.call('HDEL', KEYS[1], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
return redis.call('HVALS', KEYS[1])
"""


@dataclass(frozen=True)
class Lua:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def _broker(body: str) -> Lua:
    return Lua(_PRELUDE + body)


class BrokerScripts:
    """The broker's scripts, each compiled with the shared prelude."""

    add: Lua = _broker(ADD)
    peek: Lua = _broker(PEEK)
    claim: Lua = _broker(CLAIM)
    claim_all: Lua = _broker(CLAIM_ALL)
    renew: Lua = _broker(RENEW)
    finish: Lua = _broker(FINISH)
    requeue: Lua = _broker(REQUEUE)
    revoke: Lua = _broker(REVOKE)
    unhold: Lua = _broker(UNHOLD)
    kill: Lua = _broker(KILL)
    expired: Lua = _broker(EXPIRED)

    def all(self) -> list[Lua]:
        return [v for v in vars(type(self)).values() if isinstance(v, Lua)]


SCRIPTS = BrokerScripts()
FEED_SCRIPT = Lua(FEED_PUBLISH)
ALIVE_SCRIPT = Lua(REGISTRY_ALIVE)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Redis driver errors become Unavailable: the backend is down, busy or refusing
    writes (OOM, READONLY), and the caller must not assume anything was written.
    Driver messages name host and port at most, never the password.

    A command cancelled mid-read (a timeout of ours around a blocking XREAD, a caller that
    hung up) can come out of redis-py 8 as its own TimeoutError instead of CancelledError:
    while our task is being cancelled, the cancellation is what goes on, so `asyncio.timeout`
    and task cancellation keep working."""
    try:
        yield
    except (RedisError, OSError) as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError() from exc
        raise Unavailable(f"redis {what}: {exc}") from exc


@dataclass(frozen=True)
class Call:
    """One command in a pipeline: a script by SHA, or a plain command."""

    script: Lua | None
    keys: Sequence[str]
    args: Sequence[str | int]
    command: str = ""


class Runner:
    """EVALSHA with a reload on NOSCRIPT (a restarted or flushed Redis). redis-py's own
    Script objects check SCRIPT EXISTS before every pipeline: one wasted round trip."""

    def __init__(self, client: "Redis") -> None:
        self._client = client

    async def load(self, scripts: Sequence[Lua]) -> None:
        with translated("loading scripts"):
            for script in scripts:
                await self._client.script_load(script.source)

    async def call(self, script: Lua, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        return (await self.many([Call(script, keys, args)]))[0]

    async def many(self, calls: Sequence[Call]) -> list[Any]:
        """All calls in one round trip; calls that hit NOSCRIPT (and so did not run) are
        run again once their scripts are loaded."""
        if not calls:
            return []
        with translated("pipeline"):
            results = await self._execute(calls)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                await self.load([s for s in {calls[i].script for i in missing} if s])
                again = await self._execute([calls[i] for i in missing])
                for i, result in zip(missing, again, strict=True):
                    results[i] = result
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    async def _execute(self, calls: Sequence[Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for call in calls:
            if call.script is None:
                pipe.execute_command(call.command, *call.keys, *call.args)
            else:
                pipe.execute_command(
                    "EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args
                )
        return list(await pipe.execute(raise_on_error=False))
