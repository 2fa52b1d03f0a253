ALTER TABLE "jobs" ADD COLUMN "masking_version" integer;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "table_row_counts" text;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "restore_verified_at" timestamp(3) with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "restore_duration_ms" bigint;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "restore_result" varchar(16);--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "restore_error" varchar(4000);--> statement-breakpoint
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_restore_result_check" CHECK ("restore_result" in ('passed', 'failed'));--> statement-breakpoint
ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_action_check", ADD CONSTRAINT "audit_events_action_check" CHECK ("action" in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'restore.rehearsed'));