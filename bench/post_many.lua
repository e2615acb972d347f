-- wrk script: POST one pre-built request per line of BENCH_REQUESTS_FILE, each used once.
-- Line format: body<TAB>Header-Name: value[<TAB>Header-Name: value]. Signed client assertions
-- and DPoP proofs carry a jti that must not repeat, so they cannot be one fixed body.
local requests = {}
local index = 0

init = function(args)
  for line in io.lines(os.getenv("BENCH_REQUESTS_FILE")) do
    local fields = {}
    for field in string.gmatch(line, "[^\t]+") do fields[#fields + 1] = field end
    local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
    for k = 2, #fields do
      local name, value = string.match(fields[k], "^([^:]+): (.*)$")
      headers[name] = value
    end
    requests[#requests + 1] = wrk.format("POST", nil, headers, fields[1])
  end
end

request = function()
  index = index + 1
  if index > #requests then index = 1 end  -- replays then fail, and show up as non-2xx
  return requests[index]
end

done = function(summary, latency, requests)
  local s = summary
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\n',
    s.requests, s.duration, s.errors.status, s.errors.connect, s.errors.read, s.errors.write,
    s.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
