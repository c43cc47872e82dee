"""The Lua functions the queue's scripts share (``lua.py``): events, waiting sets, fair share, starting a job.

A model's jobs wait per priority in a sorted set (``K.waiting(queue)``) scored by a fair-share tag,
so that workers take them in start-time fair queuing order across tenants (``moviola.scheduler.fair``
is the same rule for the embedded server). A job taken is appended to the priority's stream
(the queue) and read by the workers' group at once: the stream holds only claimed jobs, whose
pending entries are the leases (renewed, reclaimed, handed back).

The functions take job ids and name the job's keys with ``K`` (``contract``): they are called for
jobs whose ids the script reads from Redis, whose keys no caller could have passed.
"""

from moviola.scheduler.redis.contract import LUA_HEADER

PRELUDE = (
    LUA_HEADER
    + r"""
-- An announce limit that covers every waiting job.
local EVERYONE = 1e9

local function is_terminal(state)
  return TERMINAL[state] == true
end

-- Append an event (its sequence number is its stream ID) and the state it implies; copy it to the
-- feed that gateways tail, unless `unfed` (a new job's first event: nobody can be watching it from the
-- feed yet but the gateway that queued it, which has it from SUBMIT's reply). A terminal event ends
-- the job's count against its tenant's in-flight quota.
local function publish(job_id, kind_json, state, time, maxlen, retention, position, unfed)
  local job_key, events_key = K.job(job_id), K.events(job_id)
  local seq = redis.call('HINCRBY', job_key, 'seq', 1)
  redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, seq .. '-0', 't', time, 'k', kind_json)
  if not unfed then
    redis.call('XADD', K.feed, 'MAXLEN', '~', FEED_LENGTH, '*', 'j', job_id, 's', seq, 't', time, 'k', kind_json)
  end
  local webhook = redis.call('HGET', job_key, 'webhook')
  if webhook and webhook ~= '' then  -- the outbox (moviola.webhooks.outbox): this event, if wanted
    local kind = cjson.decode(kind_json)['type']
    if string.find(',' .. (redis.call('HGET', job_key, 'webhook_events') or '') .. ',', ',' .. kind .. ',', 1, true) then
      local id = job_id .. '.' .. seq
      redis.call('HSET', K.webhook(id), 'url', webhook, 'tenant', redis.call('HGET', job_key, 'tenant') or '',
                 'job', job_id, 'seq', seq, 't', time, 'k', kind_json, 'attempts', 0, 'first', time)
      redis.call('ZADD', K.webhooks_due, time, id)
    end
  end
  if state ~= '' then redis.call('HSET', job_key, 'state', state) end
  if position ~= '' then redis.call('HSET', job_key, 'position', position) end
  if is_terminal(state) then
    redis.call('EXPIRE', job_key, retention)
    redis.call('EXPIRE', events_key, retention)
    local tenant = redis.call('HGET', job_key, 'tenant')
    if tenant and redis.call('HINCRBY', K.in_flight, tenant, -1) <= 0 then
      redis.call('HDEL', K.in_flight, tenant)
    end
  end
  return seq
end

-- Fair share within one queue (start-time fair queuing): a job's tag is its tenant's previous tag,
-- or the queue's virtual time if later, plus 1/weight; jobs start in tag order, and a start moves
-- the virtual time to the job's tag. A tenant with nothing waiting is forgotten, so a tenant that
-- cancels its backlog is not held back by it.
local function enter_fair(fair, tenant, weight)
  local v = tonumber(redis.call('HGET', fair, 'v') or '0')
  local last = tonumber(redis.call('HGET', fair, 't:' .. tenant) or '0')
  local tag = math.max(v, last) + 1 / weight
  redis.call('HSET', fair, 't:' .. tenant, tag)
  redis.call('HINCRBY', fair, 'n:' .. tenant, 1)
  return tag
end

local function leave_fair(fair, tenant, tag, started)
  if started and tag > tonumber(redis.call('HGET', fair, 'v') or '0') then redis.call('HSET', fair, 'v', tag) end
  if redis.call('HINCRBY', fair, 'n:' .. tenant, -1) <= 0 then redis.call('HDEL', fair, 'n:' .. tenant, 't:' .. tenant) end
end

-- Make `stream` with its consumer group `group` (reading from `start`) unless the stream exists: a
-- queue or wake stream is only ever made together with its group (here, or by a worker, which makes a
-- wake stream's backlog group first), so its existence says the group is there. Cheaper than an
-- XGROUP CREATE that fails on every call.
local function with_group(stream, group, start)
  if redis.call('EXISTS', stream) == 0 then redis.call('XGROUP', 'CREATE', stream, group, start, 'MKSTREAM') end
end

-- A model's backlog, for autoscalers (KEDA's redis-streams trigger): the group BACKLOG_GROUP of the
-- wake stream has one unread entry per queued job (``wake`` adds one when a job is queued or handed
-- back; a queued job that starts or is dropped reads one), so the group's lag is the number of
-- queued jobs. Read entries are trimmed, so the stream holds the backlog and one entry more.
local function unbacklog(model)
  local key = K.wake(model)
  local ok, read = pcall(redis.call, 'XREADGROUP', 'GROUP', BACKLOG_GROUP, 'moviola', 'COUNT', 1, 'NOACK',
                         'STREAMS', key, '>')
  if ok and read and read[1] and read[1][2][1] then redis.call('XTRIM', key, 'MINID', read[1][2][1][1]) end
end

-- Take a job out of its waiting set (cancelled or expired); 0 when it was not there (handed back).
local function unwait(job_id)
  local job_key = K.job(job_id)
  local stream = redis.call('HGET', job_key, 'stream')
  if not stream or redis.call('ZREM', K.waiting(stream), job_id) == 0 then return 0 end
  leave_fair(K.fair(stream), redis.call('HGET', job_key, 'tenant') or '', 0, false)
  return 1
end

-- A queued job leaves the queue (cancelled or expired): out of its waiting set, or, handed back,
-- its stream entry deleted (RECLAIM acknowledges the deleted entry).
local function drop_queued(job_id)
  local job_key = K.job(job_id)
  unbacklog(redis.call('HGET', job_key, 'model'))
  if unwait(job_id) == 0 then
    local stream, msg = redis.call('HGET', job_key, 'stream'), redis.call('HGET', job_key, 'msg')
    if stream and msg and msg ~= '' then redis.call('XDEL', stream, msg) end
  end
end

-- Entries that a stopping worker handed back (RELEASE): still pending, marked idle for
-- HANDED_BACK_IDLE ms (longer than any lease). They go before every job not yet started.
local function handed_back(stream)
  local ok, pending = pcall(redis.call, 'XPENDING', stream, GROUP, 'IDLE', HANDED_BACK_IDLE, '-', '+', 100)
  if not ok then return {} end
  local entries = {}
  for _, p in ipairs(pending) do
    local entry = redis.call('XRANGE', stream, p[1], p[1])[1]
    if entry then table.insert(entries, entry) end  -- else deleted (cancelled) while handed back
  end
  return entries
end

-- How many jobs of a queue wait: handed back or not yet taken.
local function waiting_in(stream)
  return #handed_back(stream) + redis.call('ZCARD', K.waiting(stream))
end

-- Tell waiting jobs of a model their new positions, where they changed: the first `limit`
-- positions (and the job `always`), so that one dispatch costs O(limit) events, not O(queue);
-- the others learn theirs from ANNOUNCE, at most a second later (`always_unfed`: `always`'s event is
-- not copied to the feed, see `publish`). Returns how many wait.
local function announce(interactive, batch, time, maxlen, retention, limit, always, always_unfed)
  local ids = {}
  for _, stream in ipairs({interactive, batch}) do
    for _, entry in ipairs(handed_back(stream)) do table.insert(ids, entry[2][2]) end
  end
  local back = #ids
  local first = redis.call('ZCARD', K.waiting(interactive))
  local total = back + first + redis.call('ZCARD', K.waiting(batch))
  local need = math.min(tonumber(limit), total) - #ids
  for _, stream in ipairs({interactive, batch}) do
    if need > 0 then
      local got = redis.call('ZRANGE', K.waiting(stream), 0, need - 1)
      for _, job_id in ipairs(got) do table.insert(ids, job_id) end
      need = need - #got
    end
  end
  local function tell(position, job_id)
    local job_key = K.job(job_id)
    if redis.call('HGET', job_key, 'state') == 'queued'
        and redis.call('HGET', job_key, 'position') ~= tostring(position) then
      publish(job_id, cjson.encode({type = 'queued', position = position}), 'queued', time, maxlen, retention,
              tostring(position), always_unfed and job_id == always)
    end
  end
  local told = false
  for position, job_id in ipairs(ids) do
    tell(position, job_id)
    if job_id == always then told = true end
  end
  if always ~= '' and not told then
    local stream = redis.call('HGET', K.job(always), 'stream')
    local rank = stream and redis.call('ZRANK', K.waiting(stream), always)
    if rank then tell(back + (stream == batch and first or 0) + rank + 1, always) end
  end
  return total
end

-- A model's waiting jobs all learn their positions.
local function announce_model(model, time, maxlen, retention)
  return announce(K.queue(model, INTERACTIVE), K.queue(model, BATCH), time, maxlen, retention, EVERYONE, '')
end

-- A queued job whose start_by passed: FAILED (deadline exceeded), out of the queue.
local function expire(job_id, time, maxlen, retention)
  local waited = tonumber(time) - tonumber(redis.call('HGET', K.job(job_id), 'created_at'))
  drop_queued(job_id)
  local message = string.format('did not start within its max_wait or deadline (waited %.1fs)', waited)
  publish(job_id, cjson.encode({type = 'failed', code = 'deadline_exceeded', message = message, retryable = true}),
          'failed', time, maxlen, retention, '0')
end

-- Wake one idle worker of the model (a job was queued or handed back): Redis hands the entry to one
-- worker blocked in the stream's group WAKE_GROUP (``claims.py``); and add the job to the model's
-- backlog (``unbacklog``).
local function wake(model)
  local key = K.wake(model)
  with_group(key, BACKLOG_GROUP, '$')
  redis.call('XADD', key, '*', 'w', 1)
end
"""
)

START_FUNCTION = r"""
-- Mark a job started (STARTED event), tell the first jobs behind it their new positions;
-- {DONE, attempt, request, created_at, how many jobs wait}, {FINISHED, 0} or {GAVE_UP, attempts}.
local function start(job_id, a)
  local job_key = K.job(job_id)
  local state = redis.call('HGET', job_key, 'state')
  if not state or is_terminal(state) then return {REPLY.FINISHED, 0} end
  local start_by = redis.call('HGET', job_key, 'start_by')
  if state == 'queued' and start_by and tonumber(start_by) < tonumber(a.time) then
    expire(job_id, a.time, a.maxlen, a.retention)
    redis.call('ZREM', K.deadlines, job_id)
    return {REPLY.FINISHED, 0}
  end
  redis.call('ZREM', K.deadlines, job_id)
  if state == 'queued' then unbacklog(redis.call('HGET', job_key, 'model')) end
  redis.call('HDEL', job_key, 'start_by')  -- it starts: a later hand-back does not bring the deadline back
  local attempts = tonumber(redis.call('HGET', job_key, 'attempts'))
  if attempts >= tonumber(a.max_attempts) then return {REPLY.GAVE_UP, attempts} end
  attempts = redis.call('HINCRBY', job_key, 'attempts', 1)
  -- The lease belongs to the claim: a takeover waits for this worker's lease, not the taker's.
  redis.call('HSET', job_key, 'worker', a.worker, 'position', 0, 'lease_ms', a.lease_ms)
  publish(job_id, cjson.encode({type = 'started', worker = a.worker, attempt = attempts}), 'running', a.time,
          a.maxlen, a.retention, '')
  local waiting = announce(a.interactive, a.batch, a.time, a.maxlen, a.retention, a.limit, '')
  return {REPLY.DONE, attempts, redis.call('HGET', job_key, 'request'), redis.call('HGET', job_key, 'created_at'),
          waiting}
end

-- A started job as TAKE and TAKE_MATE answer it: START's reply, then stream, entry id and job id.
local function begin(stream, msg_id, job_id, a)
  local result = start(job_id, a)
  return {result[1], result[2], result[3] or '', result[4] or '', result[5] or 0, stream, msg_id, job_id}
end

-- Claim a job just taken out of a waiting set (with its fair-share tag) and start it: appended to
-- the queue stream and read by the workers' group at once (the stream holds only claimed jobs).
local function claim(stream, job_id, tag, a)
  local job_key = K.job(job_id)
  leave_fair(K.fair(stream), redis.call('HGET', job_key, 'tenant') or '', tonumber(tag), true)
  with_group(stream, GROUP, '$')  -- SUBMIT made it; again if it is gone since (deleted, evicted)
  local msg_id = redis.call('XADD', stream, '*', 'job', job_id)
  local read = redis.call('XREADGROUP', 'GROUP', GROUP, a.worker, 'COUNT', 1, 'STREAMS', stream, '>')
  if read[1][2][1][1] ~= msg_id then return redis.error_reply('queue stream ' .. stream .. ' has unread entries') end
  redis.call('HSET', job_key, 'msg', msg_id)
  return begin(stream, msg_id, job_id, a)
end

-- START's arguments: the model's queues (KEYS), and from ARGV[first] on: worker, time, maxlen, retention,
-- max attempts, announce limit, lease ms.
local function start_args(interactive, batch, first)
  return {interactive = interactive, batch = batch, worker = ARGV[first], time = ARGV[first + 1],
          maxlen = ARGV[first + 2], retention = ARGV[first + 3], max_attempts = ARGV[first + 4],
          limit = ARGV[first + 5], lease_ms = ARGV[first + 6]}
end
"""
