-- Prints one machine-readable line after the run: requests, seconds, bytes, errors (all, and
-- answers with an error status), latency.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SUMMARY requests=%d seconds=%.3f bytes=%d errors=%d status_errors=%d p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, summary.duration / 1e6, summary.bytes,
    e.connect + e.read + e.write + e.status + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
