-- wrk script: signed leadgen webhook POSTs, a different pre-signed delivery per request.
--
-- BODIES names a file of lines "<X-Hub-Signature-256>\t<body>" (bench/webhook writes it,
-- one distinct leadgen id per line); WRK_THREADS is wrk's -t. Each thread takes every
-- WRK_THREADS-th line, so no two requests of a run carry the same lead. Bodies are signed
-- beforehand so that wrk spends its time sending, not hashing. Should a thread run out, it
-- starts again from its first line (duplicates are cheaper for the server: the count of
-- such requests is printed so a run that wrapped can be told apart).
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local requests = {}
local cursor = 0
wrapped = 0

function init(args)
  local nthreads = tonumber(os.getenv("WRK_THREADS"))
  local index = 0
  for line in io.lines(os.getenv("BODIES")) do
    if index % nthreads == id then
      local tab = line:find("\t", 1, true)
      local headers = {
        ["Content-Type"] = "application/json",
        ["X-Hub-Signature-256"] = line:sub(1, tab - 1),
      }
      requests[#requests + 1] = wrk.format("POST", "/webhooks/meta/", headers, line:sub(tab + 1))
    end
    index = index + 1
  end
end

function request()
  cursor = cursor + 1
  if cursor > #requests then
    cursor = 1
    wrapped = wrapped + 1
  end
  return requests[cursor]
end

function done(summary, latency, _)
  local wraps = 0
  for _, thread in ipairs(threads) do
    wraps = wraps + thread:get("wrapped")
  end
  print(string.format(
    'WRK {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "wrapped": %d}',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), wraps))
end
