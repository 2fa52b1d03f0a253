ALTER TABLE [audit_events] DROP CONSTRAINT [audit_events_action_check];--> statement-breakpoint
ALTER TABLE [jobs] ADD [masking_version] int;--> statement-breakpoint
ALTER TABLE [jobs] ADD [table_row_counts] nvarchar(max);--> statement-breakpoint
ALTER TABLE [jobs] ADD [restore_verified_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [restore_duration_ms] bigint;--> statement-breakpoint
ALTER TABLE [jobs] ADD [restore_result] nvarchar(16);--> statement-breakpoint
ALTER TABLE [jobs] ADD [restore_error] nvarchar(4000);--> statement-breakpoint
ALTER TABLE [jobs] ALTER COLUMN [error_message] nvarchar(4000);--> statement-breakpoint
ALTER TABLE [jobs] ADD CONSTRAINT [jobs_restore_result_check] CHECK ([restore_result] in ('passed', 'failed'));--> statement-breakpoint
ALTER TABLE [audit_events] ADD CONSTRAINT [audit_events_action_check] CHECK ([action] in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'restore.rehearsed'));