-- Shared by the wrk scripts, which load it with dofile: each thread gets its number in the
-- global thread_number, and done() prints one JSON line: requests, seconds, latency
-- percentiles (ms), and the errors the threads counted in their global `errors`.

threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_number", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function done(summary, latency, requests_)
  local errors_total = 0
  for _, t in ipairs(threads) do
    errors_total = errors_total + (t:get("errors") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"errors": %d, "socket_errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, errors_total,
    e.connect + e.read + e.write + e.timeout, e.status))
end
