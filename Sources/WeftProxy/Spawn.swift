#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a finished program left: its exit status and everything it wrote.
package struct SpawnResult {
    /// The exit code, or 128 + the signal's number when a signal ended it (as a shell reports it).
    package var status: Int32
    package var output: [UInt8]
    package var errors: [UInt8]
}

/// Runs a program to its end with `input` on its standard input (posix_spawn, no shell, no Foundation). The input
/// is written and both outputs are read in one poll loop: a program that writes a lot before it has read all its
/// input cannot block on a full pipe while this side blocks on the other one. `weft-proxy init` runs iptables with it.
package enum Spawn {
    package struct Failure: Error, CustomStringConvertible {
        package var description: String
    }

    /// One pipe's two ends; -1 once closed.
    private struct Pipe {
        var read: Int32 = -1
        var write: Int32 = -1

        init(for path: String) throws(Failure) {
            var ends: [Int32] = [-1, -1]
            guard pipe(&ends) == 0 else {
                throw Failure(description: "\(path): cannot make a pipe: \(errnoText())")
            }
            self.read = ends[0]
            self.write = ends[1]
            // Not inherited by the program: it gets its copies from the dup2 actions, which clear the flag.
            _ = fcntl(self.read, F_SETFD, FD_CLOEXEC)
            _ = fcntl(self.write, F_SETFD, FD_CLOEXEC)
        }
    }

    package static func run(_ path: String, _ arguments: [String], input: [UInt8]) throws(Failure) -> SpawnResult {
        // A program that exits before reading all its input must fail this write with EPIPE, not end this
        // process (weft-proxy init runs nothing else that would want SIGPIPE).
        signal(SIGPIPE, SIG_IGN)
        var stdin = try Pipe(for: path)
        defer {
            closeDescriptor(&stdin.read)
            closeDescriptor(&stdin.write)
        }
        var stdout = try Pipe(for: path)
        defer {
            closeDescriptor(&stdout.read)
            closeDescriptor(&stdout.write)
        }
        var stderr = try Pipe(for: path)
        defer {
            closeDescriptor(&stderr.read)
            closeDescriptor(&stderr.write)
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin.read, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout.write, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr.write, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw Failure(description: "\(path): cannot start: \(errnoText(spawned))")
        }
        // The child holds its own ends now; closing these is what lets its outputs reach end of file.
        closeDescriptor(&stdin.read)
        closeDescriptor(&stdout.write)
        closeDescriptor(&stderr.write)

        var result = SpawnResult(status: -1, output: [], errors: [])
        var written = 0
        if input.isEmpty {
            closeDescriptor(&stdin.write)
        } else {
            _ = fcntl(stdin.write, F_SETFL, fcntl(stdin.write, F_GETFL) | O_NONBLOCK)
        }
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while stdin.write >= 0 || stdout.read >= 0 || stderr.read >= 0 {
            // poll skips the entries whose fd is negative.
            var fds = [
                pollfd(fd: stdin.write, events: Int16(POLLOUT), revents: 0),
                pollfd(fd: stdout.read, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stderr.read, events: Int16(POLLIN), revents: 0),
            ]
            guard poll(&fds, 3, -1) >= 0 else {
                if errno == EINTR { continue }
                throw Failure(description: "\(path): poll: \(errnoText())")
            }
            if fds[0].revents != 0 {
                let count = input.withUnsafeBytes { bytes in
                    write(stdin.write, bytes.baseAddress.map { $0 + written }, bytes.count - written)
                }
                if count > 0 { written += count }
                // All written, or the program closed its input (EPIPE): it has everything it will read.
                if written == input.count || (count < 0 && errno != EAGAIN && errno != EINTR) {
                    closeDescriptor(&stdin.write)
                }
            }
            if fds[1].revents != 0 { Self.drain(&stdout.read, into: &result.output, buffer: &buffer) }
            if fds[2].revents != 0 { Self.drain(&stderr.read, into: &result.errors, buffer: &buffer) }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw Failure(description: "\(path): waitpid: \(errnoText())") }
        }
        // WIFEXITED and WEXITSTATUS are macros Swift does not import: the low 7 bits are the signal, 0 on exit.
        result.status = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return result
    }

    /// One read from `fd` appended to `output`; closes `fd` at end of file or on an error.
    private static func drain(_ fd: inout Int32, into output: inout [UInt8], buffer: inout [UInt8]) {
        let source = fd
        let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
        if count > 0 {
            output += buffer[0..<count]
        } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
            closeDescriptor(&fd)
        }
    }
}
