-- wrk's script for `npm run bench` (see scripts/bench/wrk.mjs). What each request is, from the
-- environment:
--   PATHS=<file>   PUT /events/<name>/delivered for each name of the file (one per line), in turn
--   READS=<file>   GET /domains/<name> for each name of the file, in turn
--   BODIES=<file>  POST /events with each body of the file (bodies separated by form feeds), in turn
--   DOMAINS=<n>    PUT /events/d<i>.example.com/delivered for i = 0 .. n-1, in turn
--   (none)         GET /
--   KEYS=1         every PUT and POST carries an Idempotency-Key of its own (a random prefix per
--                  thread and a counter), as a client that retries safely sends
--   PACE_MS=<n>    each connection waits n ms after an answer before its next request: a rate of
--                  about connections × 1000 / n per second, for latency below saturation
-- Each thread starts at a random place in the list. At the end one JSON line on stdout holds the
-- latency percentiles (microseconds) and the count of answers that were not 2xx or 3xx.

local items = {}
local kind = "get"

local function lines(file)
  for line in io.lines(file) do items[#items + 1] = line end
end

if os.getenv("PATHS") then
  kind = "put"
  lines(os.getenv("PATHS"))
elseif os.getenv("READS") then
  kind = "read"
  lines(os.getenv("READS"))
elseif os.getenv("BODIES") then
  kind = "post"
  local f = assert(io.open(os.getenv("BODIES"), "rb"))
  local all = f:read("*a")
  f:close()
  for body in string.gmatch(all, "([^\f]+)") do items[#items + 1] = body end
elseif os.getenv("DOMAINS") then
  kind = "put"
  for i = 0, tonumber(os.getenv("DOMAINS")) - 1 do items[#items + 1] = "d" .. i .. ".example.com" end
end

math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local i = #items > 0 and math.random(#items) or 0
local keyed = os.getenv("KEYS") == "1"
local keyPrefix = string.format("%08x%08x-", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
local sent = 0

local function headers(base)
  if not keyed then return base end
  sent = sent + 1
  local h = base or {}
  h["Idempotency-Key"] = keyPrefix .. sent
  return h
end

request = function()
  if kind == "get" then return wrk.format("GET", "/") end
  i = i % #items + 1
  if kind == "post" then
    return wrk.format("POST", "/events", headers({ ["Content-Type"] = "application/x-ndjson" }), items[i])
  elseif kind == "read" then
    return wrk.format("GET", "/domains/" .. items[i])
  end
  return wrk.format("PUT", "/events/" .. items[i] .. "/delivered", headers(nil))
end

local pace = tonumber(os.getenv("PACE_MS") or "")
if pace then
  delay = function() return pace end
end

done = function(summary, latency, requests)
  io.write(string.format(
    '{"wrk":true,"requests":%d,"seconds":%.3f,"non2xx":%d,"socketErrors":%d,"p50":%d,"p95":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
