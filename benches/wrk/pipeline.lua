-- Pipelining: every write carries DEPTH requests for the URL's path
-- (wrk -s pipeline.lua URL -- DEPTH, default 16, TechEmpower's depth).
local depth = 16

init = function(args)
  depth = tonumber(args[1]) or 16
  local batch = {}
  for i = 1, depth do
    batch[i] = wrk.format(nil, wrk.path)
  end
  req = table.concat(batch)
end

request = function()
  return req
end

-- The same summary line after the run as summary.lua, which sits beside this file.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "summary.lua")
