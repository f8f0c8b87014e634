import KubeModel
import Testing
import WeftAPI

@Suite("Defaulting")
struct DefaultingTests {
    @Test func singleDestinationGetsFullWeight() {
        let defaulted = Shop.catalogVirtualService().defaulted()
        #expect(defaulted.spec.http?[0].route?[0].weight == 100)
        // A split keeps its weights.
        #expect(defaulted.spec.http?[1].route?.map(\.weight) == [90, 10])
        #expect(defaulted.spec.tcp?[0].route[0].weight == 100)
    }

    @Test func twoDestinationsWithoutWeightsAreLeftForValidation() {
        var resource = Shop.catalogVirtualService()
        resource.spec.tcp?[0].route.append(.init(destination: .init(host: "catalog", port: .init(number: 9001))))
        let defaulted = resource.defaulted()
        #expect(defaulted.spec.tcp?[0].route.map(\.weight) == [nil, nil])
    }

    @Test func mirrorFaultAndRedirectDefaults() {
        var resource = Shop.catalogVirtualService()
        resource.spec.http?[1].mirror = .init(host: "catalog", subset: "shadow")
        resource.spec.http?[1].fault = .init(delay: .init(fixedDelay: "100ms"), abort: .init(httpStatus: 503))
        var moved = weft.v1alpha1.HTTPRoute()
        var redirect = weft.v1alpha1.HTTPRedirect()
        redirect.uri = "/new"
        moved.redirect = redirect
        resource.spec.http?.append(moved)

        let defaulted = resource.defaulted()
        #expect(defaulted.spec.http?[1].mirrorPercentage == 100)
        #expect(defaulted.spec.http?[1].fault?.delay?.percentage == 100)
        #expect(defaulted.spec.http?[1].fault?.abort?.percentage == 100)
        #expect(defaulted.spec.http?[2].redirect?.redirectCode == 301)
        #expect(defaulted.spec.http?[0].mirrorPercentage == nil)
        #expect(defaulted.validate() == [])
    }

    @Test func setValuesAreKept() {
        var resource = Shop.catalogVirtualService()
        resource.spec.http?[1].mirror = .init(host: "catalog")
        resource.spec.http?[1].mirrorPercentage = 5
        resource.spec.http?[1].fault = .init(abort: .init(percentage: 0.5, httpStatus: 503))
        let defaulted = resource.defaulted()
        #expect(defaulted.spec.http?[1].mirrorPercentage == 5)
        #expect(defaulted.spec.http?[1].fault?.abort?.percentage == 0.5)
        #expect(defaulted.defaulted() == defaulted)
    }

    @Test func authorizationActionDefaultsToAllow() {
        var resource = Shop.denyDebug()
        #expect(resource.defaulted().spec.action == "DENY")
        resource.spec.action = nil
        #expect(resource.defaulted().spec.action == "ALLOW")
        #expect(resource.spec.defaulted().action == WeftDefaults.authorizationAction)
    }

    @Test func policiesWithoutStructuralDefaultsAreUnchanged() {
        #expect(Shop.catalogDestinationPolicy().defaulted() == Shop.catalogDestinationPolicy())
        #expect(Shop.shopTLS().defaulted() == Shop.shopTLS())
    }

    @Test func numericDefaults() {
        #expect(WeftDefaults.loadBalancer == "LEAST_REQUEST")
        #expect(WeftDefaults.maxConnections == 1024)
        #expect(WeftDefaults.maxPendingRequests == 1024)
        #expect(WeftDefaults.connectTimeout == parseDuration("10s"))
        #expect(WeftDefaults.idleTimeout == parseDuration("1h"))
        #expect(WeftDefaults.consecutive5xxErrors == 5)
        #expect(WeftDefaults.outlierDetectionInterval == parseDuration("10s"))
        #expect(WeftDefaults.baseEjectionTime == parseDuration("30s"))
        #expect(WeftDefaults.maxEjectionPercent == 10)
        #expect(WeftDefaults.retryBudgetPercent == 20)
        #expect(WeftDefaults.retryBudgetMinRetriesPerSecond == 10)
        #expect(WeftDefaults.minimumRingSize == 1024)
        #expect(WeftDefaults.retryOn == "connect-failure,refused-stream,503")
        #expect(WeftDefaults.retryBackoffBaseInterval == parseDuration("25ms"))
        #expect(WeftDefaults.retryBackoffMaxInterval == parseDuration("250ms"))
        // The default retryOn passes validation.
        var resource = Shop.catalogVirtualService()
        resource.spec.http?[1].retries?.retryOn = WeftDefaults.retryOn
        #expect(resource.validate() == [])
    }
}
