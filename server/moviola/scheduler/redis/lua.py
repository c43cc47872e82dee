"""Lua scripts of the Redis queue: each state change of a job is one atomic script.

A job's event is always appended together with the state it implies, by the
same script that checks the job is not already finished, so every job gets
exactly one terminal event however many gateways and workers race on it.
Scripts touch keys derived from the job id, so they need one Redis (or a
cluster with all of Moviola's keys in one slot).
"""

from moviola.jobs import TERMINAL_STATES
from moviola.scheduler.redis import keys

#: The terminal states, from their one definition in ``moviola.jobs``.
_TERMINAL = ", ".join(f"['{state.value}'] = true" for state in sorted(TERMINAL_STATES, key=lambda s: s.value))

PRELUDE = (
    f"local FEED_LENGTH = {keys.FEED_LENGTH}\n"
    + f"local HANDED_BACK_IDLE = {keys.HANDED_BACK_IDLE_MS}\n"
    + f"local TERMINAL = {{{_TERMINAL}}}\n"
    + r"""
-- An announce limit that covers every waiting job.
local EVERYONE = 1e9

local function is_terminal(state)
  return TERMINAL[state] == true
end

-- Append an event (its sequence number is its stream ID) and the state it implies; copy it to the
-- feed that gateways tail (keys.FEED, named from the job key's prefix).
local function publish(job_key, events_key, kind_json, state, time, maxlen, retention, position)
  local seq = redis.call('HINCRBY', job_key, 'seq', 1)
  redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, seq .. '-0', 't', time, 'k', kind_json)
  local prefix, job_id = string.match(job_key, '^(.*)job:(.+)$')
  redis.call('XADD', prefix .. 'feed', 'MAXLEN', '~', FEED_LENGTH, '*', 'j', job_id, 's', seq, 't', time,
             'k', kind_json)
  if state ~= '' then redis.call('HSET', job_key, 'state', state) end
  if position ~= '' then redis.call('HSET', job_key, 'position', position) end
  if is_terminal(state) then
    redis.call('EXPIRE', job_key, retention)
    redis.call('EXPIRE', events_key, retention)
  end
  return seq
end

-- Entries of a queue stream not yet delivered to any worker, in order.
local function undelivered(stream, group)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  if not ok then return {} end
  local last = '0-0'
  for _, g in ipairs(groups) do
    local name, lastid
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] end
      if g[i] == 'last-delivered-id' then lastid = g[i + 1] end
    end
    if name == group then last = lastid end
  end
  return redis.call('XRANGE', stream, '(' .. last, '+')
end

-- Entries that a stopping worker handed back (RELEASE): still pending, marked idle for
-- HANDED_BACK_IDLE ms (longer than any lease). They go before every undelivered entry.
local function handed_back(stream, group)
  local ok, pending = pcall(redis.call, 'XPENDING', stream, group, 'IDLE', HANDED_BACK_IDLE, '-', '+', 100)
  if not ok then return {} end
  local entries = {}
  for _, p in ipairs(pending) do
    local entry = redis.call('XRANGE', stream, p[1], p[1])[1]
    if entry then table.insert(entries, entry) end  -- else deleted (cancelled) while handed back
  end
  return entries
end

-- How many jobs of a queue stream wait: handed back or not yet delivered.
local function waiting_in(stream, group)
  return #handed_back(stream, group) + #undelivered(stream, group)
end

-- Tell waiting jobs of a model their new positions, where they changed: the first `limit`
-- positions (and the job `always`), so that one dispatch costs O(limit) events, not O(queue);
-- the others learn theirs from ANNOUNCE, at most a second later.
local function announce(interactive, batch, group, prefix, time, maxlen, retention, limit, always)
  local waiting = {}
  for _, entries in ipairs({handed_back(interactive, group), handed_back(batch, group),
                            undelivered(interactive, group), undelivered(batch, group)}) do
    for _, entry in ipairs(entries) do table.insert(waiting, entry) end
  end
  for position, entry in ipairs(waiting) do
    local job_id = entry[2][2]
    local job_key = prefix .. 'job:' .. job_id
    if (position <= tonumber(limit) or job_id == always)
        and redis.call('HGET', job_key, 'state') == 'queued'
        and redis.call('HGET', job_key, 'position') ~= tostring(position) then
      publish(job_key, prefix .. 'events:' .. job_id, cjson.encode({type = 'queued', position = position}),
              'queued', time, maxlen, retention, tostring(position))
    end
  end
  return #waiting
end

-- A queued job whose start_by passed: FAILED (deadline exceeded), its queue entry removed.
local function expire(job_key, events_key, time, maxlen, retention)
  local waited = tonumber(time) - tonumber(redis.call('HGET', job_key, 'created_at'))
  local stream, msg = redis.call('HGET', job_key, 'stream'), redis.call('HGET', job_key, 'msg')
  if stream and msg then redis.call('XDEL', stream, msg) end
  local message = string.format('did not start within its max_wait or deadline (waited %.1fs)', waited)
  publish(job_key, events_key,
          cjson.encode({type = 'failed', code = 'deadline_exceeded', message = message, retryable = true}),
          'failed', time, maxlen, retention, '0')
end
"""
)

# KEYS: job, events, own queue, interactive queue, batch queue, idempotency key, deadlines, tenant's job index
# ARGV: job id, request, created_at, model, max depth, retention, maxlen, group, has key, prefix, announce limit,
# start_by ('' for none)
SUBMIT = (
    PRELUDE
    + r"""
if ARGV[9] == '1' then
  local existing = redis.call('GET', KEYS[6])
  if existing then return {0, existing} end
end
for _, q in ipairs({KEYS[4], KEYS[5]}) do pcall(redis.call, 'XGROUP', 'CREATE', q, ARGV[8], '0', 'MKSTREAM') end
local batch_waiting = #undelivered(KEYS[5], ARGV[8])  -- what a new interactive job overtakes
local depth = waiting_in(KEYS[4], ARGV[8]) + #handed_back(KEYS[5], ARGV[8]) + batch_waiting
if depth >= tonumber(ARGV[5]) then return {-1, tostring(depth)} end
local msg = redis.call('XADD', KEYS[3], '*', 'job', ARGV[1])
redis.call('HSET', KEYS[1], 'request', ARGV[2], 'created_at', ARGV[3], 'model', ARGV[4], 'state', 'queued',
           'seq', 0, 'attempts', 0, 'stream', KEYS[3], 'msg', msg, 'position', 0, 'cancel', 0)
if ARGV[9] == '1' then redis.call('SET', KEYS[6], ARGV[1], 'EX', ARGV[6]) end
redis.call('ZADD', KEYS[8], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', '(' .. (tonumber(ARGV[3]) - tonumber(ARGV[6])))
redis.call('EXPIRE', KEYS[8], ARGV[6])
if ARGV[12] ~= '' then
  redis.call('HSET', KEYS[1], 'start_by', ARGV[12])
  redis.call('ZADD', KEYS[7], ARGV[12], ARGV[1])
end
-- Jobs moved back only where an interactive job overtook waiting batch jobs: then tell all of them.
local limit = ARGV[11]
if KEYS[3] == KEYS[4] and batch_waiting > 0 then limit = EVERYONE end
announce(KEYS[4], KEYS[5], ARGV[8], ARGV[10], ARGV[3], ARGV[7], ARGV[6], limit, ARGV[1])
return {1, ARGV[1], redis.call('HGET', KEYS[1], 'position'), redis.call('HGET', KEYS[1], 'seq')}
"""
)

# KEYS: job, events. ARGV: time, maxlen, retention, expected attempt ('' for any), then a kind json and
# its new state per event. One batch of events, in order and all or none; a terminal event ends the batch.
PUBLISH = (
    PRELUDE
    + r"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {-1, ''} end
if is_terminal(state) then return {-2, ''} end
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[4] then return {-3, ''} end
local seq = 0
for i = 5, #ARGV, 2 do
  seq = publish(KEYS[1], KEYS[2], ARGV[i], ARGV[i + 1], ARGV[1], ARGV[2], ARGV[3], '')
  if is_terminal(ARGV[i + 1]) then break end
end
return {seq, redis.call('HGET', KEYS[1], 'model')}
"""
)

START_FUNCTION = r"""
-- Mark a job started (STARTED event), tell the first jobs behind it their new positions,
-- return its request and how many jobs wait.
local function start(job_key, events_key, interactive, batch, a)
  local state = redis.call('HGET', job_key, 'state')
  if not state or is_terminal(state) then return {-2, 0} end
  local job_id = string.match(job_key, 'job:(.+)$')
  local start_by = redis.call('HGET', job_key, 'start_by')
  if state == 'queued' and start_by and tonumber(start_by) < tonumber(a.time) then
    expire(job_key, events_key, a.time, a.maxlen, a.retention)
    redis.call('ZREM', a.deadlines, job_id)
    return {-2, 0}
  end
  redis.call('ZREM', a.deadlines, job_id)
  redis.call('HDEL', job_key, 'start_by')  -- it starts: a later hand-back does not bring the deadline back
  local attempts = tonumber(redis.call('HGET', job_key, 'attempts'))
  if attempts >= tonumber(a.max_attempts) then return {-4, attempts} end
  attempts = redis.call('HINCRBY', job_key, 'attempts', 1)
  -- The lease belongs to the claim: a takeover waits for this worker's lease, not the taker's.
  redis.call('HSET', job_key, 'worker', a.worker, 'position', 0, 'lease_ms', a.lease_ms)
  publish(job_key, events_key, cjson.encode({type = 'started', worker = a.worker, attempt = attempts}),
          'running', a.time, a.maxlen, a.retention, '')
  local waiting = announce(interactive, batch, a.group, a.prefix, a.time, a.maxlen, a.retention, a.limit, '')
  return {1, attempts, redis.call('HGET', job_key, 'request'), redis.call('HGET', job_key, 'created_at'), waiting}
end

local function start_args(first)
  return {worker = ARGV[first], time = ARGV[first + 1], maxlen = ARGV[first + 2], retention = ARGV[first + 3],
          max_attempts = ARGV[first + 4], group = ARGV[first + 5], prefix = ARGV[first + 6], limit = ARGV[first + 7],
          lease_ms = ARGV[first + 8], deadlines = ARGV[first + 9]}
end
"""

# KEYS: job, events, interactive queue, batch queue
# ARGV: worker, time, maxlen, retention, max attempts, group, prefix, announce limit, lease ms, deadlines key
START = (
    PRELUDE
    + START_FUNCTION
    + r"""
return start(KEYS[1], KEYS[2], KEYS[3], KEYS[4], start_args(1))
"""
)

# KEYS: interactive queue, batch queue, the queue to read first, the one to read next
# ARGV: worker, time, maxlen, retention, max attempts, group, prefix, announce limit, lease ms, deadlines key
# A free worker reads its next job and starts it, in one round trip; nil when both queues are empty.
TAKE = (
    PRELUDE
    + START_FUNCTION
    + r"""
local a = start_args(1)
local function begin(stream, entry)
  local msg_id, job_id = entry[1], entry[2][2]
  local result = start(a.prefix .. 'job:' .. job_id, a.prefix .. 'events:' .. job_id, KEYS[1], KEYS[2], a)
  return {result[1], result[2], result[3] or '', result[4] or '', result[5] or 0, stream, msg_id, job_id}
end
-- A job handed back by a stopping worker first: it had its turn already.
for _, stream in ipairs({KEYS[1], KEYS[2]}) do
  for _, entry in ipairs(handed_back(stream, a.group)) do
    if redis.call('HGET', a.prefix .. 'job:' .. entry[2][2], 'state') == 'queued' then
      redis.call('XCLAIM', stream, a.group, a.worker, 0, entry[1], 'JUSTID')
      return begin(stream, entry)
    end
  end
end
for _, stream in ipairs({KEYS[3], KEYS[4]}) do
  local ok, reply = pcall(redis.call, 'XREADGROUP', 'GROUP', a.group, a.worker, 'COUNT', 1, 'STREAMS', stream, '>')
  if ok and reply then return begin(stream, reply[1][2][1]) end
end
return nil
"""
)

# KEYS: job, events, interactive queue, batch queue. ARGV: time, maxlen, retention, group, prefix
# (Cancelling is rare: every job behind the cancelled one learns its new position at once.)
CANCEL = (
    PRELUDE
    + r"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if state == 'queued' then
  redis.call('XDEL', redis.call('HGET', KEYS[1], 'stream'), redis.call('HGET', KEYS[1], 'msg'))
  publish(KEYS[1], KEYS[2], cjson.encode({type = 'cancelled', reason = 'cancelled by request before it started'}),
          'cancelled', ARGV[1], ARGV[2], ARGV[3], '0')
  announce(KEYS[3], KEYS[4], ARGV[4], ARGV[5], ARGV[1], ARGV[2], ARGV[3], EVERYONE, '')
  return 1
elseif state == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', 1)
  return 2
end
return 0
"""
)

# KEYS: job, its queue stream, the model's live workers. ARGV: group, worker, queue entry id, time
# A worker renews its lease on a job it still runs (not one it handed back or lost to another worker).
RENEW = r"""
if redis.call('HGET', KEYS[1], 'state') == 'running' and redis.call('HGET', KEYS[1], 'worker') == ARGV[2] then
  redis.call('XCLAIM', KEYS[2], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
"""

# KEYS: interactive queue, batch queue. ARGV: group, '1' to count only jobs handed back
# How many jobs wait in each queue (handed back or not yet delivered).
WAITING = (
    PRELUDE
    + r"""
if ARGV[2] == '1' then return {#handed_back(KEYS[1], ARGV[1]), #handed_back(KEYS[2], ARGV[1])} end
return {waiting_in(KEYS[1], ARGV[1]), waiting_in(KEYS[2], ARGV[1])}
"""
)

# KEYS: interactive queue, batch queue. ARGV: group, worker, prefix, default lease ms
# Claim one entry whose holder has not renewed it for the lease that holder claimed it with (the job's
# lease_ms; handed-back entries are idle for longer than any lease). Entries deleted while pending
# (cancelled or expired) are acknowledged. Returns {stream, entry id, job id} or nil.
RECLAIM = (
    PRELUDE
    + r"""
for _, stream in ipairs({KEYS[1], KEYS[2]}) do
  local ok, pending = pcall(redis.call, 'XPENDING', stream, ARGV[1], '-', '+', 100)
  if ok then
    for _, p in ipairs(pending) do
      local msg_id, idle = p[1], tonumber(p[3])
      local entry = redis.call('XRANGE', stream, msg_id, msg_id)[1]
      if not entry then
        redis.call('XACK', stream, ARGV[1], msg_id)
      else
        local job_id = entry[2][2]
        local lease = tonumber(redis.call('HGET', ARGV[3] .. 'job:' .. job_id, 'lease_ms') or ARGV[4])
        if idle >= lease then
          local claimed = redis.call('XCLAIM', stream, ARGV[1], ARGV[2], lease, msg_id, 'JUSTID')
          if #claimed > 0 then return {stream, msg_id, job_id} end
        end
      end
    end
  end
end
return nil
"""
)

# KEYS: deadlines. ARGV: time, maxlen, retention, group, prefix, most jobs per call
# Fail the queued jobs whose start_by passed; the jobs behind them learn their new positions.
EXPIRE = (
    PRELUDE
    + r"""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[6]))
local expired = 0
for _, job_id in ipairs(due) do
  redis.call('ZREM', KEYS[1], job_id)
  local job_key = ARGV[5] .. 'job:' .. job_id
  if redis.call('HGET', job_key, 'state') == 'queued' then
    expire(job_key, ARGV[5] .. 'events:' .. job_id, ARGV[1], ARGV[2], ARGV[3])
    local model = redis.call('HGET', job_key, 'model')
    announce(ARGV[5] .. 'queue:' .. model .. ':interactive', ARGV[5] .. 'queue:' .. model .. ':batch',
             ARGV[4], ARGV[5], ARGV[1], ARGV[2], ARGV[3], EVERYONE, '')
    expired = expired + 1
  end
end
return expired
"""
)

# KEYS: interactive queue, batch queue. ARGV: time, maxlen, retention, group, prefix
# Every waiting job of a model learns its position (a start tells only the first few at once).
ANNOUNCE = (
    PRELUDE
    + r"""
return announce(KEYS[1], KEYS[2], ARGV[4], ARGV[5], ARGV[1], ARGV[2], ARGV[3], EVERYONE, '')
"""
)

# KEYS: job, events, the job's queue stream, interactive queue, batch queue
# ARGV: time, maxlen, retention, attempt, group, worker, queue entry id, prefix
# The worker gives a running job back (it is stopping): queued again, this attempt not counted, ahead of
# every job that has not started yet (the next TAKE starts it); everyone waiting learns their position.
RELEASE = (
    PRELUDE
    + r"""
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' or redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[4] then return 0 end
-- Another worker may have reclaimed the entry (lease expired) and not started the job yet.
local pending = redis.call('XPENDING', KEYS[3], ARGV[5], ARGV[7], ARGV[7], 1)[1]
if not pending or pending[2] ~= ARGV[6] then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HSET', KEYS[1], 'state', 'queued')
redis.call('XCLAIM', KEYS[3], ARGV[5], ARGV[6], 0, ARGV[7], 'IDLE', HANDED_BACK_IDLE, 'JUSTID')
announce(KEYS[4], KEYS[5], ARGV[5], ARGV[8], ARGV[1], ARGV[2], ARGV[3], EVERYONE, '')
return 1
"""
)

# KEYS: job, events, queue stream, stats
# ARGV: time, maxlen, retention, attempt, group, entry id, run seconds ('' when not completed), size class,
# alpha, then a kind json and its new state per event (PUBLISH's pairs), the terminal one last.
# A class's first run is provisional (warm-up): the second replaces it, later ones are averaged in.
# A worker ends its job: its last events and the acknowledgement of the queue entry, together.
FINISH = (
    PRELUDE
    + r"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if is_terminal(state) or redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[4] then return -2 end
local seq = 0
for i = 10, #ARGV, 2 do
  seq = publish(KEYS[1], KEYS[2], ARGV[i], ARGV[i + 1], ARGV[1], ARGV[2], ARGV[3], '')
end
redis.call('XACK', KEYS[3], ARGV[5], ARGV[6])
redis.call('XDEL', KEYS[3], ARGV[6])
if ARGV[7] ~= '' then
  local runs = redis.call('HINCRBY', KEYS[4], 'n:' .. ARGV[8], 1)
  local old = tonumber(redis.call('HGET', KEYS[4], 'c:' .. ARGV[8]))
  local seconds = tonumber(ARGV[7])
  if runs > 2 and old then seconds = (1 - tonumber(ARGV[9])) * old + tonumber(ARGV[9]) * seconds end
  redis.call('HSET', KEYS[4], 'c:' .. ARGV[8], seconds)
end
return seq
"""
)
