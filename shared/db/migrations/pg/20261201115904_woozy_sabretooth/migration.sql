CREATE TABLE "requester_recipients" (
	"id" varchar(36) PRIMARY KEY,
	"requester_oid" varchar(64) NOT NULL,
	"recipient" varchar(200) NOT NULL,
	"fingerprint" varchar(16) NOT NULL,
	"created_at" timestamp(3) with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "encryption_recipients" text;--> statement-breakpoint
CREATE UNIQUE INDEX "requester_recipients_oid_fingerprint_uq" ON "requester_recipients" ("requester_oid","fingerprint");--> statement-breakpoint
ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_action_check", ADD CONSTRAINT "audit_events_action_check" CHECK ("action" in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'recipients.updated'));