"""Lua scripts of the Redis queue: each state change of a job is one atomic script.

A job's event is always appended together with the state it implies, by the
same script that checks the job is not already finished, so every job gets
exactly one terminal event however many gateways and workers race on it.

The contract (``contract``): every script takes the key prefix as ``ARGV[1]``; the KEYS it is given
are those its caller knows and its body touches, and it names every other key with ``K`` (jobs
whose ids it reads from Redis, the feed, the webhook outbox); a script that can refuse answers
``{REPLY.<NAME>, ...}`` (``contract.Reply``). Keys named in Lua need one Redis (or a cluster with
all of Moviola's keys in one slot). The functions the scripts share, and how jobs wait and are
claimed, are in ``lua_functions``. Each script's comment lists its KEYS and its ARGV after the prefix.
"""

from moviola.scheduler.redis.contract import LUA_HEADER
from moviola.scheduler.redis.lua_functions import PRELUDE, START_FUNCTION

__all__ = [
    "ANNOUNCE",
    "CANCEL",
    "CLAIM_WEBHOOKS",
    "ESTIMATE",
    "EXPIRE",
    "FINISH",
    "PUBLISH",
    "RECLAIM",
    "RELEASE",
    "RENEW",
    "START",
    "SUBMIT",
    "TAKE",
    "TAKE_MATE",
    "TIDY",
    "WAITING",
]

# KEYS: job, events, own queue, interactive queue, batch queue, idempotency key (a placeholder when the
# request has none), deadlines, tenant's job index, in-flight counts, tenant's rate bucket
# ARGV: a contract.Submission as JSON, the encoded request
# Returns {DONE, id, position, seq} (the new job's one event, QUEUED, is not copied to the feed: the caller
# has it from this reply), {DUPLICATE, existing id}, {QUEUE_FULL, depth}, {OVER_IN_FLIGHT, in
# flight} or {OVER_RATE, seconds to wait}.
SUBMIT = (
    PRELUDE
    + r"""
local s = cjson.decode(ARGV[2])
local job_id, created_at, retention, tenant, limits = s.id, s.created_at, s.retention, s.tenant, s.limits
if s.idempotent then
  local existing = redis.call('GET', KEYS[6])
  if existing then return {REPLY.DUPLICATE, existing} end
end
for _, q in ipairs({KEYS[4], KEYS[5]}) do with_group(q, GROUP, '0') end
local in_flight = tonumber(redis.call('HGET', KEYS[9], tenant) or '0')
if limits.in_flight > 0 and in_flight >= limits.in_flight then return {REPLY.OVER_IN_FLIGHT, tostring(in_flight)} end
local rate, burst, tokens, now = limits.rate, limits.bucket, 0, 0
if rate > 0 then  -- a token bucket, on Redis's clock so that every gateway agrees
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1e6
  local bucket = redis.call('HMGET', KEYS[10], 'tokens', 'at')
  tokens = burst
  if bucket[1] and bucket[2] then tokens = math.min(burst, tonumber(bucket[1]) + (now - tonumber(bucket[2])) * rate) end
  if tokens < 1 then return {REPLY.OVER_RATE, tostring((1 - tokens) / rate)} end
end
local batch_waiting = redis.call('ZCARD', K.waiting(KEYS[5]))  -- what a new interactive job overtakes
local depth = waiting_in(KEYS[4]) + #handed_back(KEYS[5]) + batch_waiting
if depth >= s.max_depth then return {REPLY.QUEUE_FULL, tostring(depth)} end
if rate > 0 then
  redis.call('HSET', KEYS[10], 'tokens', tokens - 1, 'at', now)
  redis.call('EXPIRE', KEYS[10], math.ceil(burst / rate) + 1)
end
redis.call('HINCRBY', KEYS[9], tenant, 1)
local tag = enter_fair(K.fair(KEYS[3]), tenant, limits.weight)
redis.call('ZADD', K.waiting(KEYS[3]), tag, job_id)
redis.call('HSET', KEYS[1], 'request', ARGV[3], 'created_at', created_at, 'model', s.model, 'state', 'queued',
           'seq', 0, 'attempts', 0, 'stream', KEYS[3], 'msg', '', 'position', 0, 'cancel', 0, 'tenant', tenant,
           'webhook', s.webhook, 'webhook_events', s.webhook_events, 'batch', s.batch)
if s.idempotent then redis.call('SET', KEYS[6], job_id, 'EX', retention) end
redis.call('ZADD', KEYS[8], created_at, job_id)
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', '(' .. (tonumber(created_at) - retention))
redis.call('EXPIRE', KEYS[8], retention)
if s.start_by ~= nil and s.start_by ~= cjson.null then
  redis.call('HSET', KEYS[1], 'start_by', s.start_by)
  redis.call('ZADD', KEYS[7], s.start_by, job_id)
end
-- Jobs moved back only where an interactive job overtook waiting batch jobs, or a tenant's job
-- overtook another's backlog: then tell all of them.
local limit = s.announce_limit
if (KEYS[3] == KEYS[4] and batch_waiting > 0) or redis.call('ZRANK', K.waiting(KEYS[3]), job_id) + 1 <
    redis.call('ZCARD', K.waiting(KEYS[3])) then
  limit = EVERYONE
end
announce(KEYS[4], KEYS[5], created_at, s.maxlen, retention, limit, job_id, true)  -- its QUEUED: not in the feed
wake(s.model)
return {REPLY.DONE, job_id, redis.call('HGET', KEYS[1], 'position'), redis.call('HGET', KEYS[1], 'seq')}
"""
)

# KEYS: job. ARGV: job id, time, maxlen, retention, expected attempt ('' for any), then a kind json and
# its new state per event. One batch of events, in order and all or none; a terminal event ends the batch.
# Returns {DONE, last seq, model}, {NO_JOB}, {FINISHED} or {LEASE_LOST}.
PUBLISH = (
    PRELUDE
    + r"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {REPLY.NO_JOB} end
if is_terminal(state) then return {REPLY.FINISHED} end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[6] then return {REPLY.LEASE_LOST} end
local seq = 0
for i = 7, #ARGV, 2 do
  seq = publish(ARGV[2], ARGV[i], ARGV[i + 1], ARGV[3], ARGV[4], ARGV[5], '')
  if is_terminal(ARGV[i + 1]) then break end
end
return {REPLY.DONE, seq, redis.call('HGET', KEYS[1], 'model')}
"""
)


# KEYS: interactive queue, batch queue. ARGV: job id, then worker, time, maxlen, retention, max attempts,
# announce limit, lease ms (``start_args``). Start a job claimed by RECLAIM: START's reply (``start``).
START = (
    PRELUDE
    + START_FUNCTION
    + r"""
return start(ARGV[2], start_args(KEYS[1], KEYS[2], 3))
"""
)

# KEYS: interactive queue, batch queue, the queue to read first, the one to read next
# ARGV: worker, time, maxlen, retention, max attempts, announce limit, lease ms (``start_args``)
# A free worker takes its next job and starts it, in one round trip: a handed-back one first, then the
# first in fair-share order ({DONE, ..., stream, entry id, job id}: ``begin``). When none waits,
# {NONE_WAITING}: the worker blocks on the wake stream's group ``WAKE_GROUP``, whose next entry (a job
# queued after its last read, by this script's time or later) wakes it, or another idle worker, at once.
TAKE = (
    PRELUDE
    + START_FUNCTION
    + r"""
local a = start_args(KEYS[1], KEYS[2], 2)
-- A job handed back by a stopping worker first: it had its turn already.
for _, stream in ipairs({KEYS[1], KEYS[2]}) do
  for _, entry in ipairs(handed_back(stream)) do
    local job_id = entry[2][2]
    if redis.call('HGET', K.job(job_id), 'state') == 'queued' then
      redis.call('XCLAIM', stream, GROUP, a.worker, 0, entry[1], 'JUSTID')
      return begin(stream, entry[1], job_id, a)
    end
  end
end
for _, stream in ipairs({KEYS[3], KEYS[4]}) do
  local popped = redis.call('ZPOPMIN', K.waiting(stream))
  if #popped > 0 then return claim(stream, popped[1], popped[2], a) end
end
return {REPLY.NONE_WAITING}
"""
)

# KEYS: interactive queue, batch queue. ARGV: TAKE's, then a batch key and how many waiting jobs of
# each queue to look at. Start the first waiting job (interactive first) whose batch key is ARGV[9],
# to run in one batch with a job this worker took (TAKE's reply); {NONE_WAITING} when none is among them.
TAKE_MATE = (
    PRELUDE
    + START_FUNCTION
    + r"""
local a = start_args(KEYS[1], KEYS[2], 2)
for _, stream in ipairs({KEYS[1], KEYS[2]}) do
  local waiting = redis.call('ZRANGE', K.waiting(stream), 0, tonumber(ARGV[10]) - 1, 'WITHSCORES')
  for i = 1, #waiting, 2 do
    if redis.call('HGET', K.job(waiting[i]), 'batch') == ARGV[9] then
      redis.call('ZREM', K.waiting(stream), waiting[i])
      return claim(stream, waiting[i], waiting[i + 1], a)
    end
  end
end
return {REPLY.NONE_WAITING}
"""
)

# KEYS: job, interactive queue, batch queue. ARGV: job id, time, maxlen, retention
# Returns {DONE} (cancelled while queued), {STOP_ASKED} (running), {FINISHED} or {NO_JOB}.
# (Cancelling is rare: every job behind the cancelled one learns its new position at once.)
CANCEL = (
    PRELUDE
    + r"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {REPLY.NO_JOB} end
if state == 'queued' then
  drop_queued(ARGV[2])
  publish(ARGV[2], cjson.encode({type = 'cancelled', reason = 'cancelled by request before it started'}),
          'cancelled', ARGV[3], ARGV[4], ARGV[5], '0')
  announce(KEYS[2], KEYS[3], ARGV[3], ARGV[4], ARGV[5], EVERYONE, '')
  return {REPLY.DONE}
elseif state == 'running' then
  redis.call('HSET', KEYS[1], 'cancel', 1)
  return {REPLY.STOP_ASKED}
end
return {REPLY.FINISHED}
"""
)

# KEYS: job, its queue stream, the model's live workers. ARGV: worker, queue entry id, time
# A worker renews its lease on a job it still runs (not one it handed back or lost to another worker).
RENEW = (
    LUA_HEADER
    + r"""
if redis.call('HGET', KEYS[1], 'state') == 'running' and redis.call('HGET', KEYS[1], 'worker') == ARGV[2] then
  redis.call('XCLAIM', KEYS[2], GROUP, ARGV[2], 0, ARGV[3], 'JUSTID')
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
"""
)

# KEYS: interactive queue, batch queue
# How many jobs wait in each queue (handed back or not yet taken).
WAITING = (
    PRELUDE
    + r"""
return {waiting_in(KEYS[1]), waiting_in(KEYS[2])}
"""
)

# KEYS: interactive queue, batch queue, the model's live workers, the model's run statistics
# ARGV: the oldest heartbeat of a live worker
# What an estimate of a new job's wait reads, in one round trip: {jobs waiting in each queue, live
# workers, jobs that workers hold (pending entries less those handed back), the statistics' fields and
# values}.
ESTIMATE = (
    PRELUDE
    + r"""
local waiting, held = {}, 0
for i = 1, 2 do
  local back = #handed_back(KEYS[i])
  waiting[i] = back + redis.call('ZCARD', K.waiting(KEYS[i]))
  local ok, summary = pcall(redis.call, 'XPENDING', KEYS[i], GROUP)
  if ok then held = held + summary[1] - back end  -- else no group yet: nothing ever ran
end
local live = redis.call('ZCOUNT', KEYS[3], ARGV[2], '+inf')
return {waiting[1], waiting[2], live, math.max(0, held), redis.call('HGETALL', KEYS[4])}
"""
)

# KEYS: streams with consumer groups. ARGV: each stream's group, then the least idle ms, the caller's name.
# Forget the consumers that hold nothing (no pending entry: no lease) and have not read for the idle ms:
# workers gone without leaving (scaled down, killed), which would otherwise pile up in an autoscaled
# fleet. A consumer that reads again is made again; one that holds a lease is never touched, and the
# check and the delete are one step. Returns how many were forgotten.
TIDY = (
    PRELUDE
    + r"""
local idle, me, gone = tonumber(ARGV[#KEYS + 2]), ARGV[#KEYS + 3], 0
for i, stream in ipairs(KEYS) do
  local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', stream, ARGV[i + 1])  -- no group: none
  for _, fields in ipairs(ok and consumers or {}) do
    local c = {}
    for j = 1, #fields, 2 do c[fields[j]] = fields[j + 1] end
    if c.pending == 0 and c.idle >= idle and c.name ~= me then
      redis.call('XGROUP', 'DELCONSUMER', stream, ARGV[i + 1], c.name)
      gone = gone + 1
    end
  end
end
return gone
"""
)

# KEYS: interactive queue, batch queue. ARGV: worker, default lease ms
# Claim one entry whose holder has not renewed it for the lease that holder claimed it with (the job's
# lease_ms; handed-back entries are idle for longer than any lease). Entries deleted while pending
# (cancelled or expired) are acknowledged. Returns {stream, entry id, job id} or nil.
RECLAIM = (
    PRELUDE
    + r"""
for _, stream in ipairs({KEYS[1], KEYS[2]}) do
  local ok, pending = pcall(redis.call, 'XPENDING', stream, GROUP, '-', '+', 100)
  if ok then
    for _, p in ipairs(pending) do
      local msg_id, idle = p[1], tonumber(p[3])
      local entry = redis.call('XRANGE', stream, msg_id, msg_id)[1]
      if not entry then
        redis.call('XACK', stream, GROUP, msg_id)
      else
        local job_id = entry[2][2]
        local lease = tonumber(redis.call('HGET', K.job(job_id), 'lease_ms') or ARGV[3])
        if idle >= lease then
          local claimed = redis.call('XCLAIM', stream, GROUP, ARGV[2], lease, msg_id, 'JUSTID')
          if #claimed > 0 then return {stream, msg_id, job_id} end
        end
      end
    end
  end
end
return nil
"""
)

# KEYS: deadlines. ARGV: time, maxlen, retention, most jobs per call
# Fail the queued jobs whose start_by passed; the jobs behind them learn their new positions. Returns how many.
EXPIRE = (
    PRELUDE
    + r"""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[5]))
local expired = 0
for _, job_id in ipairs(due) do
  redis.call('ZREM', KEYS[1], job_id)
  if redis.call('HGET', K.job(job_id), 'state') == 'queued' then
    expire(job_id, ARGV[2], ARGV[3], ARGV[4])
    announce_model(redis.call('HGET', K.job(job_id), 'model'), ARGV[2], ARGV[3], ARGV[4])
    expired = expired + 1
  end
end
return expired
"""
)

# KEYS: interactive queue, batch queue. ARGV: time, maxlen, retention
# Every waiting job of a model learns its position (a start tells only the first few at once).
ANNOUNCE = (
    PRELUDE
    + r"""
return announce(KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], EVERYONE, '')
"""
)

# KEYS: job, the job's queue stream, interactive queue, batch queue
# ARGV: time, maxlen, retention, attempt, worker, queue entry id
# The worker gives a running job back (it is stopping): queued again, this attempt not counted, ahead of
# every job that has not started yet (the next TAKE starts it); everyone waiting learns their position.
# Returns {DONE} or {LEASE_LOST} (not this attempt's, or another worker reclaimed the entry).
RELEASE = (
    PRELUDE
    + r"""
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' or redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[5] then return {REPLY.LEASE_LOST} end
-- Another worker may have reclaimed the entry (lease expired) and not started the job yet.
local pending = redis.call('XPENDING', KEYS[2], GROUP, ARGV[7], ARGV[7], 1)[1]
if not pending or pending[2] ~= ARGV[6] then return {REPLY.LEASE_LOST} end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HSET', KEYS[1], 'state', 'queued')
redis.call('XCLAIM', KEYS[2], GROUP, ARGV[6], 0, ARGV[7], 'IDLE', HANDED_BACK_IDLE, 'JUSTID')
announce(KEYS[3], KEYS[4], ARGV[2], ARGV[3], ARGV[4], EVERYONE, '')
wake(redis.call('HGET', KEYS[1], 'model'))
return {REPLY.DONE}
"""
)

# KEYS: job, its queue stream, the model's stats
# ARGV: job id, time, maxlen, retention, attempt, entry id, run seconds ('' when not completed), size
# class, alpha, then a kind json and its new state per event (PUBLISH's pairs), the terminal one last.
# A class's first run is provisional (warm-up): the second replaces it, later ones are averaged in.
# A worker ends its job: its last events and the acknowledgement of the queue entry, together.
# Returns {DONE, last seq}, {NO_JOB}, {FINISHED} or {LEASE_LOST}.
FINISH = (
    PRELUDE
    + r"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {REPLY.NO_JOB} end
if is_terminal(state) then return {REPLY.FINISHED} end
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[6] then return {REPLY.LEASE_LOST} end
local seq = 0
for i = 11, #ARGV, 2 do
  seq = publish(ARGV[2], ARGV[i], ARGV[i + 1], ARGV[3], ARGV[4], ARGV[5], '')
end
redis.call('XACK', KEYS[2], GROUP, ARGV[7])
redis.call('XDEL', KEYS[2], ARGV[7])
if ARGV[8] ~= '' then
  local runs = redis.call('HINCRBY', KEYS[3], 'n:' .. ARGV[9], 1)
  local old = tonumber(redis.call('HGET', KEYS[3], 'c:' .. ARGV[9]))
  local seconds = tonumber(ARGV[8])
  if runs > 2 and old then seconds = (1 - tonumber(ARGV[10])) * old + tonumber(ARGV[10]) * seconds end
  redis.call('HSET', KEYS[3], 'c:' .. ARGV[9], seconds)
end
return {REPLY.DONE, seq}
"""
)

# KEYS: webhooks due. ARGV: now, lease, most
# Due webhook deliveries, each pushed a lease ahead so that no other gateway sends it meanwhile:
# {id, fields...} each; ids whose delivery is gone are dropped.
CLAIM_WEBHOOKS = (
    LUA_HEADER
    + r"""
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
local claimed = {}
for _, id in ipairs(due) do
  local fields = redis.call('HGETALL', K.webhook(id))
  if #fields == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), id)
    table.insert(claimed, {id, fields})
  end
end
return claimed
"""
)
