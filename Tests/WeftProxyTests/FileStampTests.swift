import Foundation
import Testing

@testable import WeftProxy

/// `FileStamp` decides when the config file and the TLS files are read again.
@Suite("FileStamp: a changed file is seen without reading it")
struct FileStampTests {
    @Test("a same-size file with the same modification time renamed over the old one is a change (its inode)")
    func sameSizeSameTimeNewInode() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("weft-stamp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("config.json").path
        let next = folder.appendingPathComponent("next.json").path
        try Data("{\"a\":1}".utf8).write(to: URL(fileURLWithPath: path))
        try Data("{\"a\":2}".utf8).write(to: URL(fileURLWithPath: next))
        // The same modification time on both, to the nanosecond: only the inode tells them apart.
        var times = [timespec(tv_sec: 1_700_000_000, tv_nsec: 5), timespec(tv_sec: 1_700_000_000, tv_nsec: 5)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        #expect(utimensat(AT_FDCWD, next, &times, 0) == 0)

        let before = try #require(FileStamp(path: path))
        #expect(FileStamp(path: path) == before, "an untouched file keeps its stamp")
        #expect(rename(next, path) == 0)
        let after = try #require(FileStamp(path: path))
        #expect(after.size == before.size)
        #expect(after.modifiedSeconds == before.modifiedSeconds)
        #expect(after.modifiedNanoseconds == before.modifiedNanoseconds)
        #expect(after != before)
    }

    @Test("a rewrite in place that changes only the modification time's nanoseconds is a change")
    func nanoseconds() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("weft-stamp-\(UUID().uuidString)")
            .path
        defer { unlink(path) }
        try Data("same".utf8).write(to: URL(fileURLWithPath: path))
        var first = [timespec(tv_sec: 1_700_000_000, tv_nsec: 1), timespec(tv_sec: 1_700_000_000, tv_nsec: 1)]
        #expect(utimensat(AT_FDCWD, path, &first, 0) == 0)
        let before = try #require(FileStamp(path: path))
        var second = [timespec(tv_sec: 1_700_000_000, tv_nsec: 2), timespec(tv_sec: 1_700_000_000, tv_nsec: 2)]
        #expect(utimensat(AT_FDCWD, path, &second, 0) == 0)
        #expect(FileStamp(path: path) != before)
    }

    @Test("a missing file has no stamp")
    func missing() {
        #expect(FileStamp(path: "/nonexistent/weft/config.json") == nil)
    }
}
