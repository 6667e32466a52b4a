-- wrk script: POSTs the JSON bodies of BENCH_BODIES (one a line) to BENCH_PATH in turn, each
-- thread from its own offset, with BENCH_TOKEN as the bearer token. With BENCH_CHECK=1 it
-- counts responses that are not HTTP 200 or carry an "errors" entry that is not empty.
-- done() prints one JSON line: requests, seconds, latency percentiles (ms), errors.

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("offset", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local token = os.getenv("BENCH_TOKEN") or ""
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
  requests = {}
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    if #line > 0 then
      table.insert(requests, wrk.format("POST", os.getenv("BENCH_PATH"), headers, line))
    end
  end
  index = (offset * 37) % #requests
  errors = 0
  check = os.getenv("BENCH_CHECK") == "1"
  if check then
    response = function(status, headers, body)
      if status ~= 200 or string.find(body, '"errors":%[{') then
        errors = errors + 1
      end
    end
  end
end

function request()
  index = index % #requests + 1
  return requests[index]
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
