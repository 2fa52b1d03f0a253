CREATE TABLE [notification_outbox] (
	[id] nvarchar(36),
	[action] nvarchar(64) NOT NULL,
	[job_id] nvarchar(36),
	[created_at] datetime2(3) NOT NULL,
	[next_attempt_at] datetime2(3) NOT NULL,
	[attempts] int NOT NULL,
	[delivered_to] nvarchar(1000) NOT NULL,
	[done_at] datetime2(3),
	[last_error] nvarchar(4000),
	CONSTRAINT [notification_outbox_pkey] PRIMARY KEY([id])
);
--> statement-breakpoint
ALTER TABLE [audit_events] DROP CONSTRAINT [audit_events_action_check];--> statement-breakpoint
ALTER TABLE [databases] ADD [rpo_breached_at] datetime2(3);--> statement-breakpoint
CREATE INDEX [notification_outbox_pending_idx] ON [notification_outbox] ([done_at],[next_attempt_at]);--> statement-breakpoint
ALTER TABLE [audit_events] ADD CONSTRAINT [audit_events_action_check] CHECK ([action] in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'rpo.breached', 'rpo.recovered'));