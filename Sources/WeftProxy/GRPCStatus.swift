/// The gRPC status for a response the proxy makes itself (the HTTP-to-gRPC mapping of the gRPC spec, with
/// timeouts as DEADLINE_EXCEEDED).
func grpcStatus(forHTTP status: Int, reason: ProxyReason) -> Int {
    if reason == .timeout {
        return 4
    }
    switch status {
    case 400: return 13
    case 401: return 16
    case 403: return 7
    case 404: return 12
    case 429, 502, 503, 504: return 14
    default: return 2
    }
}
