CREATE TABLE [runner_heartbeats] (
	[id] nvarchar(200),
	[runner_id] nvarchar(128) NOT NULL,
	[client_id] nvarchar(64) NOT NULL,
	[service_principal_id] nvarchar(64) NOT NULL,
	[version] nvarchar(64) NOT NULL,
	[server_ids] nvarchar(max) NOT NULL,
	[in_flight_jobs] int NOT NULL,
	[free_scratch_bytes] bigint,
	[last_seen_at] datetime2(3) NOT NULL,
	CONSTRAINT [runner_heartbeats_pkey] PRIMARY KEY([id])
);
--> statement-breakpoint
ALTER TABLE [audit_events] DROP CONSTRAINT [audit_events_action_check];--> statement-breakpoint
ALTER TABLE [jobs] ADD [progress_updated_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [servers] ADD [runners] nvarchar(max) NOT NULL CONSTRAINT [servers_runners_default] DEFAULT ('[]');--> statement-breakpoint
ALTER TABLE [audit_events] ADD CONSTRAINT [audit_events_action_check] CHECK ([action] in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'runner.denied', 'rpo.breached', 'rpo.recovered'));