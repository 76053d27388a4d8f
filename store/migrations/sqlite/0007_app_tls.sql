-- How an app's hosts get their certificates on the HTTPS entrypoint: `manual` (from
-- `hivemind cert add`) or `acme`; and whether plain HTTP to them is redirected to HTTPS.
ALTER TABLE apps ADD COLUMN tls TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE apps ADD COLUMN redirect_https BOOLEAN NOT NULL DEFAULT 0;
