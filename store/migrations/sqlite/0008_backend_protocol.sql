-- What an app's replicas speak: `http1`, or `h2c` (HTTP/2 without TLS, as gRPC services do).
ALTER TABLE apps ADD COLUMN backend_protocol TEXT NOT NULL DEFAULT 'http1';
