-- wrk script: request GET <prefix><i> for i = 1..N in order, then start over.
-- N and the prefix come from the environment: WT_PATHS (default 1000), WT_PREFIX ("/item/").
-- Each wrk thread has its own Lua state; with -t1 the whole run walks the paths in order.
local n = tonumber(os.getenv("WT_PATHS") or "1000")
local prefix = os.getenv("WT_PREFIX") or "/item/"
local i = 0

request = function()
  i = i % n + 1
  return wrk.format("GET", prefix .. i)
end
