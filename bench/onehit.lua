-- wrk: every request is a new visitor (no cookie), as one-hit visitors and crawlers are;
-- FLEET_BENCH_BOTS percent of them carry Googlebot's User-Agent.
local bots = tonumber(os.getenv("FLEET_BENCH_BOTS") or "20")
local seeded = false
local googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
local browser = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

request = function()
  if not seeded then
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
    seeded = true
  end
  local agent = browser
  if math.random(100) <= bots then agent = googlebot end
  return wrk.format("GET", nil, { ["User-Agent"] = agent })
end
