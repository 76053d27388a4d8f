-- The key that lets a request choose a version by name (the router's x-hivemind-variant),
-- a preview of one that has no traffic yet. Empty until the server gives the app one.
ALTER TABLE apps ADD COLUMN preview_key TEXT NOT NULL DEFAULT '';
