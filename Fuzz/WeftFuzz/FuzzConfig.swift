/// The fixed config the fuzz target routes against: two services (one with aliases and a port of its own), and
/// routes with every matcher kind (path exact, prefix and regex; method; authority; headers; query parameters;
/// port) and path and authority rewrites, so that routing runs every compiled matcher.
enum FuzzConfig {
    static let json = """
        {
          "version": "fuzz",
          "proxy": {"id": "fuzz/client", "namespace": "fuzz", "name": "client", "serviceAccount": "default",
                    "spiffeID": "spiffe://cluster.local/ns/fuzz/sa/default", "trustDomain": "cluster.local",
                    "addresses": ["127.0.0.1"]},
          "inbound": [],
          "outbound": [
            {"host": "echo.fuzz.svc.cluster.local", "aliases": ["x", "localhost", "127.0.0.1", "[::1]"],
             "port": 15001, "protocol": "http1",
             "routes": [
               {"name": "api", "matches": [
                  {"path": {"kind": "prefix", "value": "/api/"}, "method": {"kind": "exact", "value": "POST"},
                   "headers": [{"name": "x-team", "match": {"kind": "regex", "value": "pay(ments)?-[0-9]+"}}],
                   "queryParams": []},
                  {"path": {"kind": "regex", "value": "/v[0-9]+/items/[^/]+"}, "headers": [],
                   "queryParams": [{"name": "debug", "match": {"kind": "exact", "value": "true"}}]}],
                "forward": {"backends": [{"cluster": "a", "weight": 30}, {"cluster": "b", "weight": 70}],
                            "rewrite": {"path": "/internal/", "authority": "api.internal"}}},
               {"name": "exact", "matches": [
                  {"path": {"kind": "exact", "value": "/healthz"}, "authority": {"kind": "prefix", "value": "x"},
                   "headers": [], "queryParams": [], "port": 15001}],
                "forward": {"backends": [{"cluster": "a", "weight": 1}], "rewrite": {"path": "/ready"}}},
               {"name": "default", "matches": [], "forward": {"backends": [{"cluster": "a", "weight": 100}]}}
             ]},
            {"host": "other.fuzz.svc.cluster.local", "aliases": ["other"], "port": 8080, "protocol": "http1",
             "routes": [{"name": "default", "matches": [], "forward": {"backends": [{"cluster": "b", "weight": 1}]}}]}
          ],
          "clusters": []
        }
        """
}
