#!/usr/bin/env bash
# Sourced by hack/profile-proxy, hack/order-proxy and hack/pgo-proxy: bench_config FILE PORT VERSION writes the
# proxy config they run: outbound 127.0.0.1:PORT (aliases localhost, x) to the bench backend, nginx on
# 127.0.0.1:18080, and the host h2.bench on the same port to the backend's h2c listener (127.0.0.1:18084), a
# cluster that speaks HTTP/2. bench_wait_ready PORT PID TRIES waits for the proxy they start; bench_workload PORT REQUESTS
# H1_CONNECTIONS BODY runs what order-proxy and pgo-proxy profile.
bench_config() {
  cat >"$1" <<JSON
{
  "version": "$3",
  "proxy": {"id": "bench/client", "namespace": "bench", "name": "client", "serviceAccount": "default",
            "spiffeID": "spiffe://cluster.local/ns/bench/sa/default", "trustDomain": "cluster.local",
            "addresses": ["127.0.0.1"]},
  "inbound": [],
  "outbound": [{"host": "127.0.0.1", "aliases": ["localhost", "x"], "port": $2, "protocol": "http1",
                "routes": [{"name": "default", "matches": [],
                            "forward": {"backends": [{"cluster": "backend", "weight": 100}]}}]},
               {"host": "h2.bench", "aliases": [], "port": $2, "protocol": "http1",
                "routes": [{"name": "default", "matches": [],
                            "forward": {"backends": [{"cluster": "backend-h2", "weight": 100}]}}]}],
  "clusters": [{"name": "backend", "service": "backend.bench.svc.cluster.local", "port": 18080, "protocol": "http1",
                "loadBalancer": {"policy": "roundRobin"},
                "limits": {"maxConnections": 1024, "maxPendingRequests": 1024, "maxRequestsPerConnection": 0,
                           "connectTimeoutMs": 1000, "idleTimeoutMs": 120000},
                "retryBudget": {"percent": 20, "minRetriesPerSecond": 10},
                "endpoints": [{"address": "127.0.0.1", "port": 18080, "weight": 1, "ready": true}]},
               {"name": "backend-h2", "service": "backend-h2.bench.svc.cluster.local", "port": 18084,
                "protocol": "http2", "loadBalancer": {"policy": "roundRobin"},
                "limits": {"maxConnections": 1024, "maxPendingRequests": 1024, "maxRequestsPerConnection": 0,
                           "connectTimeoutMs": 1000, "idleTimeoutMs": 120000},
                "retryBudget": {"percent": 20, "minRetriesPerSecond": 10},
                "endpoints": [{"address": "127.0.0.1", "port": 18084, "weight": 1, "ready": true}]}]
}
JSON
}

# Waits (TRIES x 0.1 s at most) until the proxy on PORT answers "ok" and its admin port (PORT+2) says ready;
# returns 1 if it does not, or if process PID ends first.
bench_wait_ready() {
  local port=$1 pid=$2 tries=$3
  for _ in $(seq 1 "$tries"); do
    if [[ $(curl -s --max-time 5 "http://127.0.0.1:$port/" 2>/dev/null) == ok ]] &&
      curl -sf --max-time 5 -o /dev/null "http://127.0.0.1:$((port + 2))/ready"; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# The paths a proxy on PORT (admin on PORT+2) runs in service: the admin endpoints, a request for an unknown host,
# HTTP/1.0, a POST of the file BODY, then REQUESTS HTTP/1.1 requests on H1_CONNECTIONS connections, REQUESTS
# h2c requests (16 connections x 10 streams) and a third as many h2c requests to h2.bench (h2 to h2). Says what
# failed on stderr and returns 1 at the first failure.
bench_workload() {
  local port=$1 requests=$2 connections=$3 body=$4 path
  for path in ready stats metrics config_dump; do
    curl -s --max-time 30 -o /dev/null "http://127.0.0.1:$((port + 2))/$path" ||
      { echo "admin /$path failed" >&2; return 1; }
  done
  curl -s --max-time 30 -o /dev/null -H "Host: unknown.example" "http://127.0.0.1:$port/" ||
    { echo "unknown host failed" >&2; return 1; }
  curl -s --max-time 30 -o /dev/null --http1.0 "http://127.0.0.1:$port/" || { echo "HTTP/1.0 failed" >&2; return 1; }
  curl -s --max-time 30 -o /dev/null -d @"$body" "http://127.0.0.1:$port/" ||
    { echo "POST failed" >&2; return 1; }
  h2load -n "$requests" -c "$connections" --h1 "http://127.0.0.1:$port/" 2>&1 | grep -q "$requests succeeded" ||
    { echo "HTTP/1.1 load failed" >&2; return 1; }
  h2load -n "$requests" -c 16 -m 10 "http://127.0.0.1:$port/" 2>&1 | grep -q "$requests succeeded" ||
    { echo "h2c load failed" >&2; return 1; }
  h2load -n $((requests / 3)) -c 16 -m 10 -H ":authority: h2.bench:$port" "http://127.0.0.1:$port/" 2>&1 |
    grep -q "$((requests / 3)) succeeded" || { echo "h2c to h2 load failed" >&2; return 1; }
}
