ALTER TABLE [audit_events] DROP CONSTRAINT [audit_events_action_check];--> statement-breakpoint
ALTER TABLE [jobs] DROP CONSTRAINT [jobs_status_check];--> statement-breakpoint
ALTER TABLE [jobs] ADD [progress_updated_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [approval_decision] nvarchar(16);--> statement-breakpoint
ALTER TABLE [jobs] ADD [approval_by_oid] nvarchar(64);--> statement-breakpoint
ALTER TABLE [jobs] ADD [approval_by_upn] nvarchar(320);--> statement-breakpoint
ALTER TABLE [jobs] ADD [approval_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] ADD [approval_reason] nvarchar(500);--> statement-breakpoint
ALTER TABLE [jobs] ADD CONSTRAINT [jobs_approval_decision_check] CHECK ([approval_decision] in ('approved', 'rejected'));--> statement-breakpoint
ALTER TABLE [audit_events] ADD CONSTRAINT [audit_events_action_check] CHECK ([action] in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.awaiting_approval', 'job.approved', 'job.rejected', 'job.approval_denied', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'rpo.breached', 'rpo.recovered'));--> statement-breakpoint
ALTER TABLE [jobs] ADD CONSTRAINT [jobs_status_check] CHECK ([status] in ('Pending', 'AwaitingApproval', 'Queued', 'Running', 'Verifying', 'Available', 'Expired', 'Failed', 'Cancelled', 'Rejected'));