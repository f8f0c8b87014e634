#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes all of `bytes` to the blocking descriptor `fd`, again after a partial write or `EINTR`. Nil when it
/// all went out, else the `errno` of the write that failed.
package func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
        if written > 0 {
            offset += written
        } else if written < 0, errno == EINTR {
            continue
        } else {
            return written < 0 ? errno : EIO
        }
    }
    return nil
}

/// The text of an `errno` value ("Broken pipe").
package func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// Closes `fd` unless it is already closed (negative), and marks it closed.
func closeDescriptor(_ fd: inout Int32) {
    if fd >= 0 {
        _ = close(fd)
    }
    fd = -1
}
