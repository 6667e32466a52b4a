-- wrk script: POSTs the JSON bodies of BENCH_BODIES (one a line) to BENCH_PATH in turn, each
-- thread from its own offset, with BENCH_TOKEN as the bearer token. With BENCH_CHECK=1 it
-- counts responses that are not HTTP 200 or carry an "errors" entry that is not empty.
-- done() prints one JSON line: requests, seconds, latency percentiles (ms), errors.

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

function init(args)
  local token = os.getenv("BENCH_TOKEN") or ""
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
  requests = {}
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    if #line > 0 then
      table.insert(requests, wrk.format("POST", os.getenv("BENCH_PATH"), headers, line))
    end
  end
  index = (thread_number * 37) % #requests
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
