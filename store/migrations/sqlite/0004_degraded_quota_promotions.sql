-- Why an app is not as any deployment meant it to be (a rollback that failed and that the
-- host could not repair either), or NULL. Cleared when a release serves again.
ALTER TABLE apps ADD COLUMN degraded TEXT;
-- The most replicas the app may run at once (`--replica-quota`); NULL: the server's share.
ALTER TABLE apps ADD COLUMN replica_quota INTEGER;
-- How many times a deployment was promoted (the `context.promotions` a strategy reads).
ALTER TABLE deployments ADD COLUMN promotions INTEGER NOT NULL DEFAULT 0;
