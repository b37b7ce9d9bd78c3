-- wrk script for soak.sh: every request carries an Authorization value
-- picked at random from SOAK_AUTHZ_FILE (one a line: the good key, or
-- thousands of wrong ones), each connection waits SOAK_DELAY_MS between
-- its requests (the soak is a steady load, not a flood), and at the end
-- every status is counted: "status CODE COUNT" lines after wrk's report
-- (wrk itself only counts "Non-2xx or 3xx").
local file = os.getenv("SOAK_AUTHZ_FILE")
local delay_ms = tonumber(os.getenv("SOAK_DELAY_MS") or "0")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  values = {}
  for line in io.lines(file) do
    if #line > 0 then values[#values + 1] = line end
  end
  if #values == 0 then error("soak.lua: no Authorization values in " .. tostring(file)) end
  statuses = {}
  math.randomseed(os.time() + os.clock() * 1e6)
end

request = function()
  local v = values[math.random(1, #values)]
  return wrk.format(nil, nil, { ["Authorization"] = v })
end

function delay()
  return delay_ms
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      total[code] = (total[code] or 0) + n
    end
  end
  for code, n in pairs(total) do
    io.write(string.format("status %d %d\n", code, n))
  end
end
