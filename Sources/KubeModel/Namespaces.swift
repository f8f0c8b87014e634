// Namespaces that mirror `apiVersion`, as swiftkube does: `core.v1.Pod`, `discovery.v1.EndpointSlice`.
// Lowercase on purpose: a deliberate exception to UpperCamelCase, limited to these namespaces.

public enum meta { public enum v1 {} }
public enum core { public enum v1 {} }
public enum apps { public enum v1 {} }
public enum discovery { public enum v1 {} }
public enum coordination { public enum v1 {} }
public enum admission { public enum v1 {} }
public enum authentication { public enum v1 {} }
public enum admissionregistration { public enum v1 {} }
