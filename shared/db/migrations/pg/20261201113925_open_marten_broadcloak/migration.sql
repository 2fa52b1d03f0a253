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
ALTER TABLE "databases" ADD COLUMN "rpo_breached_at" timestamp(3) with time zone;--> statement-breakpoint
CREATE INDEX "notification_outbox_pending_idx" ON "notification_outbox" ("done_at","next_attempt_at");--> statement-breakpoint
ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_action_check", ADD CONSTRAINT "audit_events_action_check" CHECK ("action" in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'rpo.breached', 'rpo.recovered'));