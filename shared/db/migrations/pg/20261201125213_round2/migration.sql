CREATE TABLE "notification_outbox" (
	"id" varchar(36) PRIMARY KEY,
	"action" varchar(64) NOT NULL,
	"job_id" varchar(36),
	"created_at" timestamp(3) with time zone NOT NULL,
	"next_attempt_at" timestamp(3) with time zone NOT NULL,
	"attempts" integer NOT NULL,
	"delivered_to" varchar(1000) NOT NULL,
	"done_at" timestamp(3) with time zone,
	"last_error" varchar(4000)
);
--> statement-breakpoint
CREATE TABLE "requester_recipients" (
	"id" varchar(36) PRIMARY KEY,
	"requester_oid" varchar(64) NOT NULL,
	"recipient" varchar(200) NOT NULL,
	"fingerprint" varchar(16) NOT NULL,
	"created_at" timestamp(3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "runner_heartbeats" (
	"id" varchar(200) PRIMARY KEY,
	"runner_id" varchar(128) NOT NULL,
	"client_id" varchar(64) NOT NULL,
	"service_principal_id" varchar(64) NOT NULL,
	"version" varchar(64) NOT NULL,
	"server_ids" text NOT NULL,
	"in_flight_jobs" integer NOT NULL,
	"free_scratch_bytes" bigint,
	"last_seen_at" timestamp(3) with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "databases" ADD COLUMN "rpo_breached_at" timestamp(3) with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "progress_updated_at" timestamp(3) with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "approval_decision" varchar(16);--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "approval_by_oid" varchar(64);--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "approval_by_upn" varchar(320);--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "approval_at" timestamp(3) with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "approval_reason" varchar(500);--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "masking_version" integer;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "table_row_counts" text;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "restore_verified_at" timestamp(3) with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "restore_duration_ms" bigint;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "restore_result" varchar(16);--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "restore_error" varchar(4000);--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "encryption_recipients" text;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "verified_at" timestamp(3) with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "reverify_due_at" timestamp(3) with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "corrupt_at" timestamp(3) with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "manifest_key_id" varchar(256);--> statement-breakpoint
ALTER TABLE "servers" ADD COLUMN "runners" text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE "jobs" DROP COLUMN "download_url";--> statement-breakpoint
ALTER TABLE "jobs" ALTER COLUMN "error_message" SET DATA TYPE varchar(4000) USING "error_message"::varchar(4000);--> statement-breakpoint
CREATE INDEX "jobs_status_reverify_idx" ON "jobs" ("status","reverify_due_at");--> statement-breakpoint
CREATE INDEX "notification_outbox_pending_idx" ON "notification_outbox" ("done_at","next_attempt_at");--> statement-breakpoint
CREATE UNIQUE INDEX "requester_recipients_oid_fingerprint_uq" ON "requester_recipients" ("requester_oid","fingerprint");--> statement-breakpoint
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_approval_decision_check" CHECK ("approval_decision" in ('approved', 'rejected'));--> statement-breakpoint
ALTER TABLE "jobs" ADD CONSTRAINT "jobs_restore_result_check" CHECK ("restore_result" in ('passed', 'failed'));--> statement-breakpoint
ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_action_check", ADD CONSTRAINT "audit_events_action_check" CHECK ("action" in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.awaiting_approval', 'job.approved', 'job.rejected', 'job.approval_denied', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'runner.denied', 'integrity.verify_requested', 'integrity.verified', 'integrity.failed', 'rpo.breached', 'rpo.recovered', 'restore.rehearsal_requested', 'restore.rehearsed', 'sas.rehearsal_issued', 'recipients.updated'));--> statement-breakpoint
ALTER TABLE "jobs" DROP CONSTRAINT "jobs_status_check", ADD CONSTRAINT "jobs_status_check" CHECK ("status" in ('Pending', 'AwaitingApproval', 'Queued', 'Running', 'Verifying', 'Available', 'Expired', 'Failed', 'Cancelled', 'Corrupt', 'Rejected'));