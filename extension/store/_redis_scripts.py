"""The Lua scripts of the `redis` backend: each write of a task is one atomic script.

Leases (take, renew, release), and the writes of a task (create, flush, reset, checkpoint,
prune, expire), each checked against the lease in the same script that writes (fencing).
"""

from __future__ import annotations

ACQUIRE_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] or v == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Renew: KEYS n leases, then the n tasks' hashes; ARGV owner, ms, owner as JSON. A lease that
# lapsed (a Redis restart, a stall) and nobody took is still ours when we were the task's last
# writer: nobody else can have written it since.
RENEW_SCRIPT = """
local n = #KEYS / 2
local held = {}
for i = 1, n do
  local holder = redis.call('GET', KEYS[i])
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    held[#held + 1] = i
  elseif holder == false and redis.call('HGET', KEYS[n + i], '_writer') == ARGV[3] then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    held[#held + 1] = i
  end
end
return held
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# Result codes of the scripts that write a task.
GONE = 0  # the task does not exist (deleted or expired): nothing written
WRITTEN = 1
LOST = -1  # fenced: another writer holds the task's lease or wrote it since ours lapsed

# Shared by every script that writes a task. Fencing: ARGV writer ('' = unfenced), the writer as
# JSON (how the hash's hidden `_writer` field stores it), lease ms. A writer may write while it
# holds the lease, or once it lapsed if nobody took it since: then the hash's `_writer` is still
# ours (or unset: nobody fenced ever wrote it) and the lease is taken back, since nobody else can
# have written. Checked and written in one script, so a writer frozen between the check and the
# write cannot slip a write in after a takeover.
_FENCE = """
local function may_write(task, lease, writer, encoded, ms)
  if writer == '' then return true end
  local holder = redis.call('GET', lease)
  if holder then return holder == writer end
  local last = redis.call('HGET', task, '_writer')
  if last and last ~= encoded then return false end
  if tonumber(ms) > 0 then redis.call('SET', lease, writer, 'PX', ms) end
  return true
end
"""
# After a head is written: a terminal task's keys expire at its finish + retention (expire_at ms,
# '0' = keep forever), any other's are kept (a resumed task must not vanish); the `active` set
# holds the ids of tasks that are not terminal.
_KEEP = """
local function keep(task, events, ckpt, active, id, expire_at, is_active)
  for _, key in ipairs({task, events, ckpt}) do
    if expire_at ~= '0' then
      redis.call('PEXPIREAT', key, expire_at)
    else
      redis.call('PERSIST', key)
    end
  end
  if is_active == '1' then
    redis.call('SADD', active, id)
  else
    redis.call('SREM', active, id)
  end
end
"""
# Create: KEYS task, events, ckpt, lease, active, index; ARGV created-score, id, lease owner
# ('' for none), lease ms, writer as JSON ('' = unfenced), expire-at ms, active flag, then the
# hash's field/value pairs.
CREATE_SCRIPT = (
    _KEEP
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], '_writer', ARGV[5]) end
redis.call('ZADD', KEYS[6], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4]) end
keep(KEYS[1], KEYS[2], KEYS[3], KEYS[5], ARGV[2], ARGV[6], ARGV[7])
return 1
"""
)
# Flush one task: KEYS task, events, ckpt, lease, active; ARGV id, writer, writer as JSON,
# lease ms, expire-at ms, active flag, n, then n x (entry id, type, data), then the hash's pairs.
# Only while the task exists (a delete elsewhere must not be undone); an entry id at or below the
# stream's top was written by an earlier attempt whose reply was lost, so skip it.
FLUSH_SCRIPT = (
    _FENCE
    + _KEEP
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if not may_write(KEYS[1], KEYS[4], ARGV[2], ARGV[3], ARGV[4]) then return -1 end
local n = tonumber(ARGV[7])
local i = 8
for _ = 1, n do
  redis.pcall('XADD', KEYS[2], ARGV[i], 't', ARGV[i + 1], 'd', ARGV[i + 2])
  i = i + 3
end
redis.call('HSET', KEYS[1], unpack(ARGV, i))
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], '_writer', ARGV[3]) end
keep(KEYS[1], KEYS[2], KEYS[3], KEYS[5], ARGV[1], ARGV[5], ARGV[6])
return 1
"""
)
# A new run: the same keys and ARGV as FLUSH_SCRIPT without events; the old run's stream and
# checkpoints go.
RESET_SCRIPT = (
    _FENCE
    + _KEEP
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if not may_write(KEYS[1], KEYS[4], ARGV[2], ARGV[3], ARGV[4]) then return -1 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], '_writer', ARGV[3]) end
keep(KEYS[1], KEYS[2], KEYS[3], KEYS[5], ARGV[1], ARGV[5], ARGV[6])
return 1
"""
)
# One checkpoint: KEYS task, ckpt, lease; ARGV writer, writer as JSON, lease ms, name, value.
# The hash takes the task's expiry, or a checkpoint written after the finish would outlive it.
CHECKPOINT_SCRIPT = (
    _FENCE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if not may_write(KEYS[1], KEYS[3], ARGV[1], ARGV[2], ARGV[3]) then return -1 end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], '_writer', ARGV[2]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) else redis.call('PERSIST', KEYS[2]) end
return 1
"""
)
# Drop stale ids from an index: KEYS index, then n tasks' hashes; ARGV ZREM or SREM, n, the n ids,
# then the statuses (as JSON) that also count as stale. Checked again here: a task resumed or
# created anew since the caller read it stays.
PRUNE_SCRIPT = """
local n = tonumber(ARGV[2])
local stale = {}
for j = n + 3, #ARGV do stale[ARGV[j]] = true end
local removed = 0
for i = 1, n do
  local status = redis.call('HGET', KEYS[i + 1], 'status')
  if status == false or stale[status] then
    removed = removed + redis.call(ARGV[1], KEYS[1], ARGV[i + 2])
  end
end
return removed
"""
# Expire finished tasks: KEYS index, active, then 5 keys per task (`Keys.of`); ARGV per task its
# id and the finishedAt (JSON) it was chosen by. A task resumed (or finished again) since then
# has another finishedAt and stays.
EXPIRE_SCRIPT = """
local removed = {}
for i = 1, (#KEYS - 2) / 5 do
  local k = 2 + (i - 1) * 5
  local id = ARGV[2 * i - 1]
  if redis.call('HGET', KEYS[k + 1], 'finishedAt') == ARGV[2 * i] then
    redis.call('DEL', KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5])
    redis.call('ZREM', KEYS[1], id)
    redis.call('SREM', KEYS[2], id)
    removed[#removed + 1] = id
  end
end
return removed
"""
