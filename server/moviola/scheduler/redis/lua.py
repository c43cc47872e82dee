"""Lua scripts of the Redis queue: each state change of a job is one atomic script.

A job's event is always appended together with the state it implies, by the
same script that checks the job is not already finished, so every job gets
exactly one terminal event however many gateways and workers race on it.
Scripts touch keys derived from the job id and the prefix, so they need one Redis
(or a cluster with all of Moviola's keys in one slot). The functions they share,
and how jobs wait and are claimed, are in ``lua_functions``.
"""

from moviola.scheduler.redis.lua_functions import PRELUDE, START_FUNCTION

# KEYS: job, events, own queue, interactive queue, batch queue, idempotency key, deadlines, tenant's job index,
# in-flight counts, tenant's rate bucket
# ARGV: job id, request, created_at, model, max depth, retention, maxlen, group, has key, prefix, announce limit,
# start_by ('' for none), tenant, in-flight limit (0: none), submits per second (0: none), burst, weight,
# webhook url ('' for none), its events (comma-separated)
# Returns {1, id, position, seq}; {0, existing id}; {-1, depth} full; {-2, in flight} over the tenant's
# in-flight limit; {-3, seconds} over its rate, retry after that.
SUBMIT = (
    PRELUDE
    + r"""
if ARGV[9] == '1' then
  local existing = redis.call('GET', KEYS[6])
  if existing then return {0, existing} end
end
for _, q in ipairs({KEYS[4], KEYS[5]}) do pcall(redis.call, 'XGROUP', 'CREATE', q, ARGV[8], '0', 'MKSTREAM') end
local tenant = ARGV[13]
local in_flight = tonumber(redis.call('HGET', KEYS[9], tenant) or '0')
if tonumber(ARGV[14]) > 0 and in_flight >= tonumber(ARGV[14]) then return {-2, tostring(in_flight)} end
local rate, burst, tokens, now = tonumber(ARGV[15]), tonumber(ARGV[16]), 0, 0
if rate > 0 then  -- a token bucket, on Redis's clock so that every gateway agrees
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
  local bucket = redis.call('HMGET', KEYS[10], 'tokens', 'at')
  tokens = burst
  if bucket[1] and bucket[2] then tokens = math.min(burst, tonumber(bucket[1]) + (now - tonumber(bucket[2])) * rate) end
  if tokens < 1 then return {-3, tostring((1 - tokens) / rate)} end
end
local batch_waiting = redis.call('ZCARD', KEYS[5] .. ':waiting')  -- what a new interactive job overtakes
local depth = waiting_in(KEYS[4], ARGV[8]) + #handed_back(KEYS[5], ARGV[8]) + batch_waiting
if depth >= tonumber(ARGV[5]) then return {-1, tostring(depth)} end
if rate > 0 then
  redis.call('HSET', KEYS[10], 'tokens', tokens - 1, 'at', now)
  redis.call('EXPIRE', KEYS[10], math.ceil(burst / rate) + 1)
end
redis.call('HINCRBY', KEYS[9], tenant, 1)
local tag = enter_fair(KEYS[3] .. ':fair', tenant, tonumber(ARGV[17]))
redis.call('ZADD', KEYS[3] .. ':waiting', tag, ARGV[1])
redis.call('HSET', KEYS[1], 'request', ARGV[2], 'created_at', ARGV[3], 'model', ARGV[4], 'state', 'queued',
           'seq', 0, 'attempts', 0, 'stream', KEYS[3], 'msg', '', 'position', 0, 'cancel', 0, 'tenant', tenant,
           'webhook', ARGV[18], 'webhook_events', ARGV[19], 'batch', ARGV[20])
if ARGV[9] == '1' then redis.call('SET', KEYS[6], ARGV[1], 'EX', ARGV[6]) end
redis.call('ZADD', KEYS[8], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', '(' .. (tonumber(ARGV[3]) - tonumber(ARGV[6])))
redis.call('EXPIRE', KEYS[8], ARGV[6])
if ARGV[12] ~= '' then
  redis.call('HSET', KEYS[1], 'start_by', ARGV[12])
  redis.call('ZADD', KEYS[7], ARGV[12], ARGV[1])
end
-- Jobs moved back only where an interactive job overtook waiting batch jobs, or a tenant's job
-- overtook another's backlog: then tell all of them.
local limit = ARGV[11]
if (KEYS[3] == KEYS[4] and batch_waiting > 0) or redis.call('ZRANK', KEYS[3] .. ':waiting', ARGV[1]) + 1 <
    redis.call('ZCARD', KEYS[3] .. ':waiting') then
  limit = EVERYONE
end
announce(KEYS[4], KEYS[5], ARGV[8], ARGV[10], ARGV[3], ARGV[7], ARGV[6], limit, ARGV[1])
wake(ARGV[10], ARGV[4])
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


# KEYS: job, events, interactive queue, batch queue
# ARGV: worker, time, maxlen, retention, max attempts, group, prefix, announce limit, lease ms, deadlines key
START = (
    PRELUDE
    + START_FUNCTION
    + r"""
return start(KEYS[1], KEYS[2], KEYS[3], KEYS[4], start_args(1))
"""
)

# KEYS: interactive queue, batch queue, the queue to read first, the one to read next, the model's wake stream
# ARGV: worker, time, maxlen, retention, max attempts, group, prefix, announce limit, lease ms, deadlines key
# A free worker takes its next job and starts it, in one round trip: a handed-back one first, then the
# first in fair-share order. When none waits, {0, the wake stream's last id}: the worker blocks reading
# the wake stream after that id, so that a job queued after this script wakes it at once.
TAKE = (
    PRELUDE
    + START_FUNCTION
    + r"""
local a = start_args(1)
local function begin(stream, msg_id, job_id)
  local result = start(a.prefix .. 'job:' .. job_id, a.prefix .. 'events:' .. job_id, KEYS[1], KEYS[2], a)
  return {result[1], result[2], result[3] or '', result[4] or '', result[5] or 0, stream, msg_id, job_id}
end
-- A job handed back by a stopping worker first: it had its turn already.
for _, stream in ipairs({KEYS[1], KEYS[2]}) do
  for _, entry in ipairs(handed_back(stream, a.group)) do
    if redis.call('HGET', a.prefix .. 'job:' .. entry[2][2], 'state') == 'queued' then
      redis.call('XCLAIM', stream, a.group, a.worker, 0, entry[1], 'JUSTID')
      return begin(stream, entry[1], entry[2][2])
    end
  end
end
for _, stream in ipairs({KEYS[3], KEYS[4]}) do
  local popped = redis.call('ZPOPMIN', stream .. ':waiting')
  if #popped > 0 then
    local job_id, job_key = popped[1], a.prefix .. 'job:' .. popped[1]
    leave_fair(stream .. ':fair', redis.call('HGET', job_key, 'tenant') or '', tonumber(popped[2]), true)
    -- Claimed: appended to the stream and read by the group at once (the stream holds only claimed jobs).
    local msg_id = redis.call('XADD', stream, '*', 'job', job_id)  -- SUBMIT made the group with the job
    local read = redis.call('XREADGROUP', 'GROUP', a.group, a.worker, 'COUNT', 1, 'STREAMS', stream, '>')
    if read[1][2][1][1] ~= msg_id then return redis.error_reply('queue stream ' .. stream .. ' has unread entries') end
    redis.call('HSET', job_key, 'msg', msg_id)
    return begin(stream, msg_id, job_id)
  end
end
local last = redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)[1]
return {0, last and last[1] or '0-0'}
"""
)

# KEYS: interactive queue, batch queue. ARGV: TAKE's start arguments, then a batch key and how many
# waiting jobs of each queue to look at. Start the first waiting job (interactive first) whose batch
# key is ARGV[11], to run in one batch with a job this worker took; {0} when none is among them.
TAKE_MATE = (
    PRELUDE
    + START_FUNCTION
    + r"""
local a = start_args(1)
for _, stream in ipairs({KEYS[1], KEYS[2]}) do
  local waiting = redis.call('ZRANGE', stream .. ':waiting', 0, tonumber(ARGV[12]) - 1, 'WITHSCORES')
  for i = 1, #waiting, 2 do
    local job_id, job_key = waiting[i], a.prefix .. 'job:' .. waiting[i]
    if redis.call('HGET', job_key, 'batch') == ARGV[11] then
      redis.call('ZREM', stream .. ':waiting', job_id)
      leave_fair(stream .. ':fair', redis.call('HGET', job_key, 'tenant') or '', tonumber(waiting[i + 1]), true)
      local msg_id = redis.call('XADD', stream, '*', 'job', job_id)
      local read = redis.call('XREADGROUP', 'GROUP', a.group, a.worker, 'COUNT', 1, 'STREAMS', stream, '>')
      if read[1][2][1][1] ~= msg_id then return redis.error_reply('queue stream ' .. stream .. ' has unread entries') end
      redis.call('HSET', job_key, 'msg', msg_id)
      local result = start(job_key, a.prefix .. 'events:' .. job_id, KEYS[1], KEYS[2], a)
      return {result[1], result[2], result[3] or '', result[4] or '', result[5] or 0, stream, msg_id, job_id}
    end
  end
end
return {0}
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
  drop_queued(KEYS[1], string.match(KEYS[1], 'job:(.+)$'))
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
# How many jobs wait in each queue (handed back or not yet taken).
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
wake(ARGV[8], redis.call('HGET', KEYS[1], 'model'))
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
