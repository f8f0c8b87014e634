import KubeModel
import Testing
import WeftCompiler
import WeftController

@Suite("Programmed ledger")
struct ProgrammedLedgerTests {
    static let vs = ResourceRef(kind: "VirtualService", namespace: "shop", name: "catalog")
    static let dp = ResourceRef(kind: "DestinationPolicy", namespace: "shop", name: "catalog")

    func programmed(_ ledger: ProgrammedLedger, _ ref: ResourceRef = vs, affected: [String] = ["shop/*"]) -> String {
        let condition = ledger.programmed(ref, affected: affected, accepted: true, generation: 1)
        return "\(condition.status.rawValue) \(condition.reason): \(condition.message)"
    }

    @Test("True only when every affected proxy acknowledged a config that contains the resource's generation")
    func acknowledgements() {
        var ledger = ProgrammedLedger()
        ledger.compiled(
            versions: ["shop/a": "a1", "shop/b": "b1", "web/c": "c1"], generations: [Self.vs: 1, Self.dp: 1])
        #expect(self.programmed(ledger) == "False Pending: 0/2 proxies acknowledged")
        ledger.acknowledged("shop/a", version: "a1")
        #expect(self.programmed(ledger) == "False Pending: 1/2 proxies acknowledged")
        ledger.acknowledged("shop/b", version: "b1")
        #expect(self.programmed(ledger) == "True Programmed: 2/2 proxies acknowledged")
        #expect(self.programmed(ledger, affected: ["*"]) == "False Pending: 2/3 proxies acknowledged")
        #expect(
            self.programmed(ledger, affected: ["shop/a", "shop/gone"]) == "True Programmed: 1/1 proxies acknowledged")
    }

    @Test("Another resource's change does not make this one Pending; its own new generation does")
    func generations() {
        var ledger = ProgrammedLedger()
        ledger.compiled(versions: ["shop/a": "a1"], generations: [Self.vs: 1, Self.dp: 1])
        ledger.acknowledged("shop/a", version: "a1")
        // The DestinationPolicy changes (generation 2) and with it the proxy's config.
        ledger.compiled(versions: ["shop/a": "a2"], generations: [Self.vs: 1, Self.dp: 2])
        #expect(self.programmed(ledger, Self.vs) == "True Programmed: 1/1 proxies acknowledged")
        #expect(self.programmed(ledger, Self.dp) == "False Pending: 0/1 proxies acknowledged")
        ledger.acknowledged("shop/a", version: "a2")
        #expect(self.programmed(ledger, Self.dp) == "True Programmed: 1/1 proxies acknowledged")
        // Compiles that leave the proxy's version alone keep it programmed.
        ledger.compiled(versions: ["shop/a": "a2"], generations: [Self.vs: 1, Self.dp: 2])
        #expect(self.programmed(ledger, Self.dp) == "True Programmed: 1/1 proxies acknowledged")
    }

    @Test("A NACK of the desired version makes it Rejected with the error; a later ACK clears it")
    func refusals() {
        var ledger = ProgrammedLedger()
        ledger.compiled(versions: ["shop/a": "a1"], generations: [Self.vs: 1])
        ledger.acknowledged("shop/a", version: "a1")
        ledger.compiled(versions: ["shop/a": "bad"], generations: [Self.vs: 2])
        ledger.refused("shop/a", version: "bad", error: "invalid_header")
        #expect(
            self.programmed(ledger)
                == "False Rejected: 0/1 proxies acknowledged; 1 rejected the config; shop/a: invalid_header")
        #expect(ledger.proxies["shop/a"]?.acknowledged == "a1")
        ledger.compiled(versions: ["shop/a": "a3"], generations: [Self.vs: 3])
        #expect(self.programmed(ledger) == "False Pending: 0/1 proxies acknowledged")
        ledger.acknowledged("shop/a", version: "a3")
        #expect(self.programmed(ledger) == "True Programmed: 1/1 proxies acknowledged")
    }

    @Test("An invalid resource is not programmed; one compiled before any proxy connected waits for them")
    func invalidAndUnknown() {
        var ledger = ProgrammedLedger()
        ledger.compiled(versions: [:], generations: [Self.vs: 1])
        #expect(ledger.programmed(Self.vs, affected: [], accepted: false, generation: 1).reason == "Invalid")
        #expect(self.programmed(ledger, affected: []) == "True Programmed: 0/0 proxies acknowledged")
        #expect(ledger.programmed(Self.dp, affected: [], accepted: true, generation: 1).status == .unknown)
    }
}
