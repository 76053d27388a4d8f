-- Where an installed plugin came from, for `plugin inspect`: a file, an OCI reference.
ALTER TABLE plugins ADD COLUMN source TEXT NOT NULL DEFAULT '';
