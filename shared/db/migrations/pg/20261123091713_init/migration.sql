CREATE TABLE "audit_events" (
	"id" varchar(36) PRIMARY KEY,
	"at" timestamp(3) with time zone NOT NULL,
	"actor_type" varchar(16) NOT NULL,
	"actor_id" varchar(64) NOT NULL,
	"actor_name" varchar(320),
	"action" varchar(64) NOT NULL,
	"target" varchar(200) NOT NULL,
	"job_id" varchar(36),
	"ip" varchar(64),
	"user_agent" varchar(512),
	"detail" text NOT NULL,
	CONSTRAINT "audit_events_actor_type_check" CHECK ("actor_type" in ('user', 'app', 'system')),
	CONSTRAINT "audit_events_action_check" CHECK ("action" in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued'))
);
--> statement-breakpoint
CREATE TABLE "databases" (
	"id" varchar(36) PRIMARY KEY,
	"server_id" varchar(36) NOT NULL,
	"name" varchar(128) NOT NULL,
	"requester_group_ids" text NOT NULL,
	"policy" text NOT NULL,
	"schedule" text,
	"enabled" boolean NOT NULL,
	"created_at" timestamp(3) with time zone NOT NULL,
	"updated_at" timestamp(3) with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "jobs" (
	"id" varchar(36) PRIMARY KEY,
	"database_id" varchar(36) NOT NULL,
	"server_id" varchar(36) NOT NULL,
	"database_name" varchar(128) NOT NULL,
	"engine" varchar(16) NOT NULL,
	"status" varchar(16) NOT NULL,
	"options" text NOT NULL,
	"requester_oid" varchar(64) NOT NULL,
	"requester_upn" varchar(320),
	"trigger" varchar(16) NOT NULL,
	"schedule_slot" varchar(40),
	"blob_path" varchar(1024) NOT NULL,
	"progress_percent" double precision,
	"progress_bytes" bigint,
	"size_bytes" bigint,
	"sha256" varchar(64),
	"error_code" varchar(64),
	"error_message" varchar(2000),
	"download_url" varchar(4000),
	"download_expires_at" timestamp(3) with time zone,
	"created_at" timestamp(3) with time zone NOT NULL,
	"updated_at" timestamp(3) with time zone NOT NULL,
	"accepted_at" timestamp(3) with time zone,
	"completed_at" timestamp(3) with time zone,
	"expires_at" timestamp(3) with time zone,
	CONSTRAINT "jobs_engine_check" CHECK ("engine" in ('sqlserver', 'postgres')),
	CONSTRAINT "jobs_status_check" CHECK ("status" in ('Pending', 'Queued', 'Running', 'Verifying', 'Available', 'Expired', 'Failed', 'Cancelled')),
	CONSTRAINT "jobs_trigger_check" CHECK ("trigger" in ('user', 'schedule'))
);
--> statement-breakpoint
CREATE TABLE "servers" (
	"id" varchar(36) PRIMARY KEY,
	"name" varchar(128) NOT NULL,
	"host" varchar(255) NOT NULL,
	"engine" varchar(16) NOT NULL,
	"description" varchar(1000),
	"created_at" timestamp(3) with time zone NOT NULL,
	"updated_at" timestamp(3) with time zone NOT NULL,
	CONSTRAINT "servers_engine_check" CHECK ("engine" in ('sqlserver', 'postgres'))
);
--> statement-breakpoint
CREATE INDEX "audit_events_at_idx" ON "audit_events" ("at","id");--> statement-breakpoint
CREATE INDEX "audit_events_job_id_idx" ON "audit_events" ("job_id");--> statement-breakpoint
CREATE INDEX "audit_events_actor_id_idx" ON "audit_events" ("actor_id");--> statement-breakpoint
CREATE INDEX "databases_server_id_idx" ON "databases" ("server_id");--> statement-breakpoint
CREATE INDEX "jobs_requester_created_idx" ON "jobs" ("requester_oid","created_at","id");--> statement-breakpoint
CREATE INDEX "jobs_created_idx" ON "jobs" ("created_at","id");--> statement-breakpoint
CREATE INDEX "jobs_status_expires_idx" ON "jobs" ("status","expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "jobs_schedule_slot_uq" ON "jobs" ("database_id","schedule_slot") WHERE "schedule_slot" is not null;--> statement-breakpoint
ALTER TABLE "databases" ADD CONSTRAINT "databases_server_id_servers_id_fkey" FOREIGN KEY ("server_id") REFERENCES "servers"("id");