#!/usr/bin/env bash
# Sourced by hack/profile-proxy and hack/order-proxy: bench_config FILE PORT VERSION writes the proxy config they
# run: outbound 127.0.0.1:PORT (aliases localhost, x) to the bench backend, nginx on 127.0.0.1:18080.
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
                            "forward": {"backends": [{"cluster": "backend", "weight": 100}]}}]}],
  "clusters": [{"name": "backend", "service": "backend.bench.svc.cluster.local", "port": 18080, "protocol": "http1",
                "loadBalancer": {"policy": "roundRobin"},
                "limits": {"maxConnections": 1024, "maxPendingRequests": 1024, "maxRequestsPerConnection": 0,
                           "connectTimeoutMs": 1000, "idleTimeoutMs": 120000},
                "retryBudget": {"percent": 20, "minRetriesPerSecond": 10},
                "endpoints": [{"address": "127.0.0.1", "port": 18080, "weight": 1, "ready": true}]}]
}
JSON
}
