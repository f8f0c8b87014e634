#if WEFT_FUZZ
/// libFuzzer's entry point (hack/fuzz-libfuzzer builds with `-sanitize=fuzzer,address -DWEFT_FUZZ`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzRequest.run(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

/// libFuzzer's driver (in the sanitizer runtime).
@_silgen_name("LLVMFuzzerRunDriver")
func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// SwiftPM links an executable with `main` aliased to `<module>_main`, so libFuzzer's own `main` is not used:
/// this is that symbol, and it runs libFuzzer's driver.
@_cdecl("WeftFuzz_main")
public func weftFuzzMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    _ = FuzzRequest.table  // the one-time setup, before libFuzzer's leak tracking starts
    var argc = argc
    var argv = argv
    return llvmFuzzerRunDriver(&argc, &argv) { data, size in fuzzTestOneInput(data, size) }
}
#else
import Foundation

/// Without the fuzzer (a normal `swift build`): replays the files named on the command line through the same
/// code, so the target builds everywhere and a crashing input found by libFuzzer can be rerun in a debugger.
@main
struct WeftFuzzReplay {
    static func main() {
        guard FuzzRequest.table != nil else {
            print("WeftFuzz: the fixed config (FuzzConfig.json) does not decode or compile")
            exit(1)
        }
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("WeftFuzz: cannot read \(path)")
                continue
            }
            let routes = data.withUnsafeBytes { FuzzRequest.run($0) }
            print("\(path): routes \(routes.joined(separator: " "))")
            count += 1
        }
        print("WeftFuzz: replayed \(count) inputs")
    }
}
#endif
