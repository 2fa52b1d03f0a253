ALTER TABLE [audit_events] DROP CONSTRAINT [audit_events_action_check];--> statement-breakpoint
ALTER TABLE [jobs] DROP CONSTRAINT [jobs_status_check];--> statement-breakpoint
ALTER TABLE [jobs] ADD [progress_updated_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [verified_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [reverify_due_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [corrupt_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [manifest_key_id] nvarchar(256);--> statement-breakpoint
CREATE INDEX [jobs_status_reverify_idx] ON [jobs] ([status],[reverify_due_at]);--> statement-breakpoint
ALTER TABLE [audit_events] ADD CONSTRAINT [audit_events_action_check] CHECK ([action] in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'integrity.verify_requested', 'integrity.verified', 'integrity.failed', 'rpo.breached', 'rpo.recovered'));--> statement-breakpoint
ALTER TABLE [jobs] ADD CONSTRAINT [jobs_status_check] CHECK ([status] in ('Pending', 'Queued', 'Running', 'Verifying', 'Available', 'Expired', 'Failed', 'Cancelled', 'Corrupt'));