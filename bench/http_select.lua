-- wrk script for bench/http.sh: one pgbench -S transaction (a SELECT by primary key) per HTTP POST to /sql,
-- with Neon's driver's headers, over keep-alive connections.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Neon-Connection-String"] = os.getenv("PGMUX_URL")
wrk.headers["Neon-Raw-Text-Output"] = "true"
wrk.headers["Neon-Array-Mode"] = "true"

local accounts = tonumber(os.getenv("ACCOUNTS") or "1000000")

request = function()
  local aid = math.random(1, accounts)
  return wrk.format(nil, nil, nil,
    '{"query":"SELECT abalance FROM pgbench_accounts WHERE aid = $1","params":["' .. aid .. '"]}')
end
