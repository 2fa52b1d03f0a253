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
CREATE TABLE [requester_recipients] (
	[id] nvarchar(36),
	[requester_oid] nvarchar(64) NOT NULL,
	[recipient] nvarchar(200) NOT NULL,
	[fingerprint] nvarchar(16) NOT NULL,
	[created_at] datetime2(3) NOT NULL,
	CONSTRAINT [requester_recipients_pkey] PRIMARY KEY([id])
);
--> statement-breakpoint
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
ALTER TABLE [jobs] DROP CONSTRAINT [jobs_status_check];--> statement-breakpoint
ALTER TABLE [databases] ADD [rpo_breached_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [progress_updated_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [approval_decision] nvarchar(16);--> statement-breakpoint
ALTER TABLE [jobs] ADD [approval_by_oid] nvarchar(64);--> statement-breakpoint
ALTER TABLE [jobs] ADD [approval_by_upn] nvarchar(320);--> statement-breakpoint
ALTER TABLE [jobs] ADD [approval_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [approval_reason] nvarchar(500);--> statement-breakpoint
ALTER TABLE [jobs] ADD [masking_version] int;--> statement-breakpoint
ALTER TABLE [jobs] ADD [table_row_counts] nvarchar(max);--> statement-breakpoint
ALTER TABLE [jobs] ADD [restore_verified_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [restore_duration_ms] bigint;--> statement-breakpoint
ALTER TABLE [jobs] ADD [restore_result] nvarchar(16);--> statement-breakpoint
ALTER TABLE [jobs] ADD [restore_error] nvarchar(4000);--> statement-breakpoint
ALTER TABLE [jobs] ADD [encryption_recipients] nvarchar(max);--> statement-breakpoint
ALTER TABLE [jobs] ADD [verified_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [reverify_due_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [corrupt_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [manifest_key_id] nvarchar(256);--> statement-breakpoint
ALTER TABLE [servers] ADD [runners] nvarchar(max) NOT NULL CONSTRAINT [servers_runners_default] DEFAULT ('[]');--> statement-breakpoint
ALTER TABLE [jobs] ALTER COLUMN [error_message] nvarchar(4000);--> statement-breakpoint
CREATE INDEX [jobs_status_reverify_idx] ON [jobs] ([status],[reverify_due_at]);--> statement-breakpoint
CREATE INDEX [notification_outbox_pending_idx] ON [notification_outbox] ([done_at],[next_attempt_at]);--> statement-breakpoint
CREATE UNIQUE INDEX [requester_recipients_oid_fingerprint_uq] ON [requester_recipients] ([requester_oid],[fingerprint]);--> statement-breakpoint
ALTER TABLE [jobs] DROP COLUMN [download_url];--> statement-breakpoint
ALTER TABLE [jobs] ADD CONSTRAINT [jobs_approval_decision_check] CHECK ([approval_decision] in ('approved', 'rejected'));--> statement-breakpoint
ALTER TABLE [jobs] ADD CONSTRAINT [jobs_restore_result_check] CHECK ([restore_result] in ('passed', 'failed'));--> statement-breakpoint
ALTER TABLE [audit_events] ADD CONSTRAINT [audit_events_action_check] CHECK ([action] in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.awaiting_approval', 'job.approved', 'job.rejected', 'job.approval_denied', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'runner.denied', 'integrity.verify_requested', 'integrity.verified', 'integrity.failed', 'rpo.breached', 'rpo.recovered', 'restore.rehearsal_requested', 'restore.rehearsed', 'sas.rehearsal_issued', 'recipients.updated'));--> statement-breakpoint
ALTER TABLE [jobs] ADD CONSTRAINT [jobs_status_check] CHECK ([status] in ('Pending', 'AwaitingApproval', 'Queued', 'Running', 'Verifying', 'Available', 'Expired', 'Failed', 'Cancelled', 'Corrupt', 'Rejected'));