-- The host names an app answers to on the server's entrypoints (a JSON array), and the
-- path prefix it is bound to under them.
ALTER TABLE apps ADD COLUMN hosts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE apps ADD COLUMN path_prefix TEXT NOT NULL DEFAULT '/';
