ALTER TABLE apps ADD COLUMN backend_protocol TEXT NOT NULL DEFAULT 'http1';
