extension StringProtocol {
    /// Without leading and trailing whitespace (spaces, tabs, newlines), as Foundation's `trimmingCharacters(in:)`
    /// does, without its `CharacterSet`, which would bring the whole of Foundation into the sidecar.
    var trimmedWhitespace: SubSequence {
        guard let first = self.firstIndex(where: { !$0.isWhitespace }),
            let last = self.lastIndex(where: { !$0.isWhitespace })
        else { return self[self.endIndex...] }
        return self[first...last]
    }
}
