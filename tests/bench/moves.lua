-- wrk script: each request moves 1 to 10 alerts, drawn from a small shared pool so that
-- concurrent moves overlap, into one of a few incidents. BENCH_ALERTS and BENCH_TARGETS are
-- comma-separated ids. A response that is not HTTP 200 or carries any error (top-level or in
-- the payload) is counted. done() prints one JSON line like bodies.lua.

dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local function split(text)
  local out = {}
  for part in string.gmatch(text, "[^,]+") do table.insert(out, part) end
  return out
end

function init(args)
  math.randomseed(1000 + thread_number)
  token = os.getenv("BENCH_TOKEN") or ""
  alerts = split(os.getenv("BENCH_ALERTS"))
  targets = split(os.getenv("BENCH_TARGETS"))
  errors = 0
end

function request()
  local n = math.random(1, 10)
  local chosen, seen = {}, {}
  while #chosen < n do
    local a = alerts[math.random(1, #alerts)]
    if not seen[a] then seen[a] = true; table.insert(chosen, '"' .. a .. '"') end
  end
  local target = targets[math.random(1, #targets)]
  local body = '{"query":"mutation($ids: [ID!]!, $to: ID!) { linkAlerts(alertIds: $ids, ' ..
    'target: {existingIncidentId: $to}, comment: \\"bench move\\") { targetIncident { id alertCount } ' ..
    'errors { code message } } }","variables":{"ids":[' .. table.concat(chosen, ",") .. '],"to":"' .. target .. '"}}'
  return wrk.format("POST", "/graphql",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }, body)
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors":%[{') then
    errors = errors + 1
  end
end
