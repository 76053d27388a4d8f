-- A deployment's hooks: its hook components pinned by sha256, and the stages whose hooks
-- have run, JSON (see model::HookRuns). A restart never runs a stage twice.
ALTER TABLE deployments ADD COLUMN hook_runs TEXT NOT NULL DEFAULT '{}';
