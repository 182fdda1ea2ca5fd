-- wrk, one connection per thread: every request carries the cookie of one hot session
-- (FLEET_BENCH_HOT), and each thread (client) increments a variable of its own, k<thread>,
-- through merge.php's k= parameter.
local cookie = "PHPSESSID=" .. (os.getenv("FLEET_BENCH_HOT") or "hotsession")
local threads = 0

function setup(thread)
  thread:set("client", threads)
  threads = threads + 1
end

request = function()
  return wrk.format("GET", wrk.path .. "&k=k" .. client, { ["Cookie"] = cookie })
end
