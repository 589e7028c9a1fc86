-- Replays pre-signed WhatsApp webhooks for wrk (wrk.ts beside it writes the file and starts wrk).
-- Each line of the file is "<X-Hub-Signature-256>\t<JSON body>"; requests cycle through them in
-- order. Signing happens before the run, in Node, so wrk spends its time on HTTP alone.
local signatures, bodies, count, at = {}, {}, 0, 0

function init(args)
  for line in io.lines(args[1]) do
    local tab = line:find("\t", 1, true)
    count = count + 1
    signatures[count] = line:sub(1, tab - 1)
    bodies[count] = line:sub(tab + 1)
  end
end

function request()
  at = at % count + 1
  return wrk.format("POST", wrk.path, {
    ["content-type"] = "application/json",
    ["x-hub-signature-256"] = signatures[at],
  }, bodies[at])
end

-- One JSON line for wrk.ts; latencies in microseconds.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.2f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
