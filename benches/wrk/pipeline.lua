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

-- Prints one machine-readable line after the run: requests, seconds, bytes, errors (all, and
-- answers with an error status), latency.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SUMMARY requests=%d seconds=%.3f bytes=%d errors=%d status_errors=%d p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.duration / 1e6, summary.bytes,
    e.connect + e.read + e.write + e.status + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
