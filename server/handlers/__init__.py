"""HTTP handlers: parse and validate, call a service, answer."""
