-- wrk script: POST a pool of distinct pre-signed Stripe events, each thread its own share.
-- An event is never sent twice: a thread whose share runs out sends GETs of a path no
-- configuration serves (answered 404 or 405, so never counted as a 2xx) and counts them, so
-- every 2xx answer stands for one distinct event that the run's stored rows must hold.
-- Environment: BENCH_POOL (pool file: path line, then "<signature>\t<body>" lines),
-- BENCH_PORTS (comma-separated ports on 127.0.0.1; thread i talks to port i mod n).
-- done() prints one line "BENCH_RESULT {json}" that benchmarks/wrk.py parses.

local threads = {}
local counter = 0

function setup(thread)
   local ports = {}
   for port in string.gmatch(os.getenv("BENCH_PORTS") or "", "%d+") do
      table.insert(ports, port)
   end
   if #ports > 0 then
      local port = ports[(counter % #ports) + 1]
      thread.addr = wrk.lookup("127.0.0.1", port)[1]
   end
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local requests = {}
local position = 0
local exhausted_request = nil
exhausted = 0
statuses = {}

function init(args)
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   local file = assert(io.open(os.getenv("BENCH_POOL"), "rb"))
   local path = file:read("*l")
   local index = 0
   for line in file:lines() do
      if index % nthreads == id then
         local tab = string.find(line, "\t", 1, true)
         local headers = {
            ["Content-Type"] = "application/json; charset=utf-8",
            ["Stripe-Signature"] = string.sub(line, 1, tab - 1),
            ["User-Agent"] = "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
         }
         table.insert(requests, wrk.format("POST", path, headers, string.sub(line, tab + 1)))
      end
      index = index + 1
   end
   file:close()
   exhausted_request = wrk.format("GET", "/bench/pool-exhausted")
end

function request()
   position = position + 1
   if position > #requests then
      exhausted = exhausted + 1
      return exhausted_request
   end
   return requests[position]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

local function json_counts(counts)
   local parts = {}
   for key, value in pairs(counts) do
      table.insert(parts, string.format('"%s": %d', tostring(key), value))
   end
   return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
   local total_statuses = {}
   local total_exhausted = 0
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         total_statuses[status] = (total_statuses[status] or 0) + count
      end
      total_exhausted = total_exhausted + thread:get("exhausted")
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d}, ' ..
      '"statuses": %s, "exhausted": %d}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9),
      json_counts(total_statuses), total_exhausted))
end
