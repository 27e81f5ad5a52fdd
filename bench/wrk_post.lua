-- wrk script for bench/proxy_bench.py: POSTs chat requests, unique bodies unless SAME=1.
-- API=openai|anthropic  SAME=0|1  MODEL=mock   e.g.  API=anthropic wrk -t2 -c32 -d10s --latency -s bench/wrk_post.lua http://127.0.0.1:4000
local counter = 0
local threads = {}
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end
local api = os.getenv("API") or "openai"
local same = os.getenv("SAME") == "1"
local model = os.getenv("MODEL") or "mock"
local path = (api == "anthropic") and "/v1/messages" or "/v1/chat/completions"
local headers = {["content-type"] = "application/json", ["x-api-key"] = "sk-bench",
                 ["authorization"] = "Bearer sk-bench", ["anthropic-version"] = "2023-06-01"}
local n = 0
function request()
  n = n + 1
  local text = "What is the capital of France?"
  if not same then text = text .. " (request " .. tid .. "-" .. n .. ")" end
  local body = '{"model":"' .. model .. '","max_tokens":32,"temperature":0,"messages":[{"role":"user","content":"' .. text .. '"}]}'
  return wrk.format("POST", path, headers, body)
end
bad = 0  -- global: done() reads it from each thread with thread:get("bad")
function response(status, hdrs, body)
  if status ~= 200 or not string.find(body, "Paris", 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local wrong = 0
  for _, t in ipairs(threads) do wrong = wrong + (t:get("bad") or 0) end
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx_or_wrong=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, wrong, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
