-- wrk script: POST one short chat completion per request and count responses by HTTP status.
--   wrk -s bench/chat.lua URL -- <plain|stream> <api-key>
-- done() prints one line "BENCH_RESULT {json}" that bench/run.py parses (latencies in microseconds).

local threads = {}

local prompt = "Summarise in one short sentence why a billing gateway should meter every request "
  .. "exactly and record usage durably before the response completes."

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' .. prompt .. '"}],'
    .. '"max_tokens":16'
  if args[1] == "stream" then
    body = body .. ',"stream":true,"stream_options":{"include_usage":true}'
  end
  wrk.method = "POST"
  wrk.body = body .. "}"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. (args[2] or "bench-key")
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f},"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    table.concat(parts, ",")
  ))
end
