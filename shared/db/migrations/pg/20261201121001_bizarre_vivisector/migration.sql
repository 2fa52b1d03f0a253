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
ALTER TABLE "servers" ADD COLUMN "runners" text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_action_check", ADD CONSTRAINT "audit_events_action_check" CHECK ("action" in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued', 'runner.denied', 'rpo.breached', 'rpo.recovered'));