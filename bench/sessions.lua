-- wrk: each request carries the cookie of one of FLEET_BENCH_SESSIONS sessions, chosen at
-- random (PHP accepts client-chosen ids without session.use_strict_mode). The ids start with
-- FLEET_BENCH_PREFIX, so each handler and scenario has sessions of its own.
local sessions = tonumber(os.getenv("FLEET_BENCH_SESSIONS") or "2000")
local prefix = os.getenv("FLEET_BENCH_PREFIX") or "bench"
local seeded = false

request = function()
  if not seeded then
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
    seeded = true
  end
  local id = string.format("%s%08d", prefix, math.random(sessions))
  return wrk.format("GET", nil, { ["Cookie"] = "PHPSESSID=" .. id })
end
