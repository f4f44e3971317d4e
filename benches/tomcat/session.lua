-- wrk script of the Tomcat benchmark (benches/tomcat): each connection keeps one session and
-- checks every answer. Arguments: the share of modifying requests in percent (default 20), and
-- the number of 1 KiB attributes each session holds (default 0): with N > 0 every modifying
-- request is GET /?attributes=N, which keeps N such attributes in the session and replaces one.
--
-- The first request is GET / (it creates the session); the JSESSIONID of the response's
-- Set-Cookie is sent from then on. The mix is deterministic, not random, so every mode sees the
-- same sequence: with 20, every fifth request is GET / (increments the session's counter) and the
-- four others GET /read (read it without changing it). The session id must stay the one held, and
-- the counter must grow by one on each GET / and stay put on each GET /read. done() prints the
-- totals of all threads on one line starting with SESSIONCHECK.
--
-- Each wrk thread runs its own copy of this script (its own Lua state, its own globals), and
-- request() is called per thread, not per connection: run wrk with as many threads as
-- connections so that each connection keeps one session.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Globals, so that done() can read them from each thread with thread:get().
writes, reads, sessions, changed, lost, mismatches, failures, counter = 0, 0, 0, 0, 0, 0, 0, 0

local write_percent = 20
local modify_path = "/"
local credit = 0
local cookie = nil
local session = nil
local expect = nil -- "write" or "read": what the request in flight was

function init(args)
  write_percent = tonumber(args[1]) or 20
  local attributes = tonumber(args[2]) or 0
  if attributes > 0 then
    modify_path = "/?attributes=" .. attributes
  end
end

function request()
  -- Deterministic mix: a write each time the credit reaches 100; always a write until the
  -- session exists.
  credit = credit + write_percent
  if cookie == nil or credit >= 100 then
    if credit >= 100 then credit = credit - 100 end
    expect = "write"
    if cookie == nil then
      return wrk.format("GET", modify_path)
    end
    return wrk.format("GET", modify_path, { ["Cookie"] = "JSESSIONID=" .. cookie })
  end
  expect = "read"
  return wrk.format("GET", "/read", { ["Cookie"] = "JSESSIONID=" .. cookie })
end

function response(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    return
  end
  local set = headers["Set-Cookie"] or headers["set-cookie"]
  if set then
    local id = set:match("JSESSIONID=([^;]+)")
    if id and id ~= cookie then
      if cookie == nil then sessions = sessions + 1 else changed = changed + 1 end
      cookie = id
    end
  end
  local id = body:match("session=(%S+)")
  local value = tonumber(body:match("counter=(%d+)") or "")
  if id == nil or id == "none" or id ~= cookie or value == nil then
    lost = lost + 1
    return
  end
  if expect == "write" then
    writes = writes + 1
    if value ~= counter + 1 then mismatches = mismatches + 1 end
  else
    reads = reads + 1
    if value ~= counter then mismatches = mismatches + 1 end
  end
  counter = value
end

function done(summary, latency, requests)
  local names = { "sessions", "changed", "writes", "reads", "lost", "mismatches", "failures" }
  local total = {}
  for _, name in ipairs(names) do total[name] = 0 end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(names) do total[name] = total[name] + (thread:get(name) or 0) end
  end
  io.write(string.format(
    "SESSIONCHECK threads=%d sessions=%d changed=%d writes=%d reads=%d lost=%d mismatches=%d failures=%d\n",
    #threads, total.sessions, total.changed, total.writes, total.reads, total.lost,
    total.mismatches, total.failures))
end
