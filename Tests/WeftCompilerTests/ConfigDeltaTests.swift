import ProxyConfig
import Testing
import WeftCompiler
import WeftTesting

/// The push stream sends a `ProxyConfigDelta` instead of the whole config when few entries changed. The compiler
/// writes every config in canonical order (what lets the proxy rebuild the exact config), and after every kind of
/// edit a delta applied to each proxy's old config gives its new config, version included.
@Suite("Config deltas between successive compiles")
struct ConfigDeltaTests {
    @Test("every compiled config is in canonical order, after every edit")
    func compiledConfigsAreCanonical() {
        var snapshot = CompileSessionTests.cluster.snapshot()
        var session = WeftCompiler().session()
        for (name, edit) in [("the first compile", { @Sendable (_: inout WeftSnapshot) in })]
            + CompileSessionTests.edits
        {
            edit(&snapshot)
            let result = session.compile(snapshot)
            #expect(!result.proxies.isEmpty)
            for (id, config) in result.proxies {
                #expect(config.isCanonicallyOrdered, "\(id) after \(name)")
            }
        }
    }

    @Test("old config + delta = new config, for every proxy after every edit")
    func deltasRebuildTheNewConfig() throws {
        var snapshot = CompileSessionTests.cluster.snapshot()
        var session = WeftCompiler().session()
        var previous = session.compile(snapshot).proxies
        var deltas = 0
        for (name, edit) in CompileSessionTests.edits {
            edit(&snapshot)
            let next = session.compile(snapshot).proxies
            for (id, new) in next {
                guard let old = previous[id], old.version != new.version else { continue }
                guard let delta = ProxyConfigDelta.between(old, new) else { continue }
                deltas += 1
                #expect(delta.base == old.version)
                #expect(delta.entryCount > 0, "\(id) after \(name)")
                // Through its wire encoding, as the proxy gets it.
                let received = try ProxyConfigDelta.decode(try delta.encoded())
                #expect(try received.applied(to: old) == new, "\(id) after \(name)")
            }
            previous = next
        }
        // Most edits change a few entries of many proxies: deltas, not full configs.
        #expect(deltas > 100)
    }

    @Test("a timeout change in one VirtualService is one outbound entry for every proxy")
    func oneRouteChangeIsOneEntry() throws {
        let cluster = CompileSessionTests.cluster
        var snapshot = cluster.snapshot()
        var session = WeftCompiler().session()
        let before = session.compile(snapshot).proxies
        snapshot.virtualServices[0] = cluster.virtualService(0, timeout: "9s")
        let after = session.compile(snapshot).proxies
        for (id, new) in after {
            let old = try #require(before[id])
            let delta = try #require(ProxyConfigDelta.between(old, new), "\(id)")
            #expect(delta.outbound.count == 1, "\(id)")
            #expect(delta.entryCount == 1, "\(id)")
            #expect(try delta.applied(to: old) == new)
        }
    }
}
