ALTER TABLE "jobs" ADD COLUMN "approval_decision" varchar(16);--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "approval_by_oid" varchar(64);--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "approval_by_upn" varchar(320);--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "approval_at" timestamp(3) with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "approval_reason" varchar(500);--> statement-breakpoint
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_approval_decision_check" CHECK ("approval_decision" in ('approved', 'rejected'));--> statement-breakpoint
ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_action_check", ADD CONSTRAINT "audit_events_action_check" CHECK ("action" in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.awaiting_approval', 'job.approved', 'job.rejected', 'job.approval_denied', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'runner.denied', 'rpo.breached', 'rpo.recovered', 'restore.rehearsed', 'recipients.updated'));--> statement-breakpoint
ALTER TABLE "jobs" DROP CONSTRAINT "jobs_status_check", ADD CONSTRAINT "jobs_status_check" CHECK ("status" in ('Pending', 'AwaitingApproval', 'Queued', 'Running', 'Verifying', 'Available', 'Expired', 'Failed', 'Cancelled', 'Rejected'));
