"""HTTP: request and response objects, the HTTP/1.1 layer over h11, and the
pure parts of request handling (targets, ranges, conditional requests)."""
