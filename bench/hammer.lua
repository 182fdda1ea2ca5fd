-- wrk: every request carries the one cookie of FLEET_BENCH_HOT (a hot session). A reply
-- 429 makes the thread wait its Retry-After (1 s) before its next request, as a browser or
-- proxy that honours it would.
local cookie = "PHPSESSID=" .. (os.getenv("FLEET_BENCH_HOT") or "hotsession")
local backoff = 0

request = function()
  return wrk.format("GET", nil, { ["Cookie"] = cookie })
end

response = function(status, headers, body)
  if status == 429 then backoff = 1000 end
end

delay = function()
  local d = backoff
  backoff = 0
  return d
end
