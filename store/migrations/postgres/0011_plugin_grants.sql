-- The powers an installed hook plugin was granted (`plugin install --allow`), as the
-- installer wrote them, comma-separated: `jobs`, `http`, `http:HOST:PORT`.
ALTER TABLE plugins ADD COLUMN grants TEXT NOT NULL DEFAULT '';
