CREATE TABLE [requester_recipients] (
	[id] nvarchar(36),
	[requester_oid] nvarchar(64) NOT NULL,
	[recipient] nvarchar(200) NOT NULL,
	[fingerprint] nvarchar(16) NOT NULL,
	[created_at] datetime2(3) NOT NULL,
	CONSTRAINT [requester_recipients_pkey] PRIMARY KEY([id])
);
--> statement-breakpoint
ALTER TABLE [audit_events] DROP CONSTRAINT [audit_events_action_check];--> statement-breakpoint
ALTER TABLE [jobs] ADD [encryption_recipients] nvarchar(max);--> statement-breakpoint
ALTER TABLE [jobs] ALTER COLUMN [error_message] nvarchar(4000);--> statement-breakpoint
CREATE UNIQUE INDEX [requester_recipients_oid_fingerprint_uq] ON [requester_recipients] ([requester_oid],[fingerprint]);--> statement-breakpoint
ALTER TABLE [audit_events] ADD CONSTRAINT [audit_events_action_check] CHECK ([action] in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'recipients.updated'));