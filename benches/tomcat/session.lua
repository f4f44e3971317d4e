-- wrk script of the Tomcat benchmark (benches/tomcat): each wrk thread holds the sessions of its
-- connections and sends their requests in turn, checking every answer. Arguments: the share of
-- modifying requests in percent (default 20); the number of 1 KiB attributes each session holds
-- (default 0: with N > 0 every modifying request is GET /?attributes=N, which keeps N such
-- attributes in the session and replaces one); the number of sessions of each thread (default 1:
-- the benchmark gives its connections times SESSIONS).
--
-- wrk runs one Lua state per thread, and calls request() and response() per thread, not per
-- connection, in an order that does not pair them. So the sessions belong to the thread:
-- request() takes the next one that has no request in flight, and response() finds the session
-- an answer is for by the demo application's `requested=<id>` (the session id the request sent;
-- `none` for a session's first request, all of which are alike). Each connection thus carries the
-- thread's sessions in turn, as a load balancer's connection carries many users.
--
-- A session's first request is GET / (it creates the session); the JSESSIONID of the answer's
-- Set-Cookie is sent from then on, and replaced when an answer sets another. The mix is
-- deterministic, not random, so that every mode sees the same sequence: with 20, every fifth
-- request of a session is GET / (increments the session's counter) and the four others GET /read
-- (read it without changing it); the sessions' turns are staggered, so that the modifying
-- requests spread evenly. Each answer must show the session held (else the session is lost, and a
-- new one takes its place), and a counter grown by one on GET / and unchanged on GET /read (else a
-- mismatch). A session whose id changed with its counter kept counts as changed. done() prints
-- the totals of all threads on one line starting with SESSIONCHECK.
--
-- wrk (4.1) calls request() once more on its first thread's Lua state before the load starts, to
-- check the request, and never sends that one: that call must not take a session, which would
-- then wait for an answer forever.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("checked_request_pending", #threads == 1)
end

-- Globals, so that done() can read them from each thread with thread:get().
writes, reads, sessions, changed, lost, mismatches, failures = 0, 0, 0, 0, 0, 0, 0

local write_percent = 20
local modify_path = "/"
-- The thread's sessions, each { cookie = id or nil, counter = n, credit = n, busy = bool,
-- write = bool (what its request in flight is) }.
local slots = {}
-- Session id -> its slot.
local by_cookie = {}
-- Slots whose first request is in flight, oldest first.
local creating = {}
-- The slot of the last request.
local turn = 0

function init(args)
  write_percent = tonumber(args[1]) or 20
  local attributes = tonumber(args[2]) or 0
  if attributes > 0 then
    modify_path = "/?attributes=" .. attributes
  end
  local count = tonumber(args[3]) or 1
  for i = 1, count do
    -- Credits spread over 0..99, so that the sessions modify on different turns.
    slots[i] = { cookie = nil, counter = 0, credit = math.floor((i - 1) * 100 / count),
                 busy = false, write = false }
  end
end

-- The next slot without a request in flight; the next one anyway when all have one (requests
-- whose answers never came, after errors).
local function next_slot()
  for _ = 1, #slots do
    turn = turn % #slots + 1
    if not slots[turn].busy then
      return slots[turn]
    end
  end
  turn = turn % #slots + 1
  return slots[turn]
end

function request()
  if checked_request_pending then
    checked_request_pending = false
    return wrk.format("GET", modify_path)
  end
  local slot = next_slot()
  slot.busy = true
  if slot.cookie == nil then
    slot.write = true
    table.insert(creating, slot)
    return wrk.format("GET", modify_path)
  end
  local headers = { ["Cookie"] = "JSESSIONID=" .. slot.cookie }
  slot.credit = slot.credit + write_percent
  if slot.credit >= 100 then
    slot.credit = slot.credit - 100
    slot.write = true
    return wrk.format("GET", modify_path, headers)
  end
  slot.write = false
  return wrk.format("GET", "/read", headers)
end

-- The slot holds session `id` from now on.
local function bind(slot, id)
  if slot.cookie ~= nil then
    by_cookie[slot.cookie] = nil
  end
  slot.cookie = id
  by_cookie[id] = slot
end

-- The slot holds no session any more: its next request creates one.
local function forget(slot)
  if slot.cookie ~= nil then
    by_cookie[slot.cookie] = nil
  end
  slot.cookie = nil
  slot.counter = 0
end

-- Answers other than 200 by status, and as text ("503:2 404:1") for done() to read.
local failed = {}
statuses = ""

function response(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    failed[status] = (failed[status] or 0) + 1
    local parts = {}
    for code, count in pairs(failed) do table.insert(parts, code .. ":" .. count) end
    statuses = table.concat(parts, " ")
    return
  end
  local requested = body:match(" requested=(%S+)")
  local slot = nil
  if requested == "none" then
    slot = table.remove(creating, 1)
  elseif requested ~= nil then
    slot = by_cookie[requested]
  end
  if slot == nil then
    failures = failures + 1
    return
  end
  slot.busy = false
  if slot.write then writes = writes + 1 else reads = reads + 1 end
  local step = slot.write and 1 or 0
  local id = body:match("^session=(%S+)")
  local value = tonumber(body:match(" counter=(%d+)") or "")
  local set = headers["Set-Cookie"] or headers["set-cookie"]
  local new = set and set:match("JSESSIONID=([^;]+)")
  if new and new ~= slot.cookie then
    if slot.cookie == nil then
      sessions = sessions + 1
    elseif id == new and value == slot.counter + step then
      changed = changed + 1
    else
      -- A new session in place of the one held.
      lost = lost + 1
      sessions = sessions + 1
      slot.counter = 0
    end
    bind(slot, new)
  end
  if id == nil or id ~= slot.cookie or value == nil then
    lost = lost + 1
    forget(slot)
    return
  end
  if value ~= slot.counter + step then
    mismatches = mismatches + 1
  end
  slot.counter = value
end

function done(summary, latency, requests)
  local names = { "sessions", "changed", "writes", "reads", "lost", "mismatches", "failures" }
  local total = {}
  for _, name in ipairs(names) do total[name] = 0 end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(names) do total[name] = total[name] + (thread:get(name) or 0) end
  end
  local by_status = {}
  for _, thread in ipairs(threads) do
    for code, count in string.gmatch(thread:get("statuses") or "", "(%d+):(%d+)") do
      by_status[code] = (by_status[code] or 0) + tonumber(count)
    end
  end
  local parts = {}
  for code, count in pairs(by_status) do table.insert(parts, code .. ":" .. count) end
  table.sort(parts)
  io.write(string.format(
    "SESSIONCHECK threads=%d sessions=%d changed=%d writes=%d reads=%d lost=%d mismatches=%d failures=%d statuses=%s\n",
    #threads, total.sessions, total.changed, total.writes, total.reads, total.lost,
    total.mismatches, total.failures, #parts > 0 and table.concat(parts, ",") or "none"))
end
