CREATE TABLE [audit_events] (
	[id] nvarchar(36),
	[at] datetime2(3) NOT NULL,
	[actor_type] nvarchar(16) NOT NULL,
	[actor_id] nvarchar(64) NOT NULL,
	[actor_name] nvarchar(320),
	[action] nvarchar(64) NOT NULL,
	[target] nvarchar(200) NOT NULL,
	[job_id] nvarchar(36),
	[ip] nvarchar(64),
	[user_agent] nvarchar(512),
	[detail] nvarchar(max) NOT NULL,
	CONSTRAINT [audit_events_pkey] PRIMARY KEY([id]),
	CONSTRAINT [audit_events_actor_type_check] CHECK ([actor_type] in ('user', 'app', 'system')),
	CONSTRAINT [audit_events_action_check] CHECK ([action] in ('server.created', 'server.updated', 'server.deleted', 'database.created', 'database.updated', 'database.deleted', 'job.requested', 'job.queued', 'job.running', 'job.verifying', 'job.available', 'job.expired', 'job.failed', 'job.cancelled', 'job.cancel_requested', 'job.delete_requested', 'job.progress', 'sas.download_issued', 'sas.download_denied', 'sas.upload_issued'))
);
--> statement-breakpoint
CREATE TABLE [databases] (
	[id] nvarchar(36),
	[server_id] nvarchar(36) NOT NULL,
	[name] nvarchar(128) NOT NULL,
	[requester_group_ids] nvarchar(max) NOT NULL,
	[policy] nvarchar(max) NOT NULL,
	[schedule] nvarchar(max),
	[enabled] bit NOT NULL,
	[created_at] datetime2(3) NOT NULL,
	[updated_at] datetime2(3) NOT NULL,
	CONSTRAINT [databases_pkey] PRIMARY KEY([id])
);
--> statement-breakpoint
CREATE TABLE [jobs] (
	[id] nvarchar(36),
	[database_id] nvarchar(36) NOT NULL,
	[server_id] nvarchar(36) NOT NULL,
	[database_name] nvarchar(128) NOT NULL,
	[engine] nvarchar(16) NOT NULL,
	[status] nvarchar(16) NOT NULL,
	[options] nvarchar(max) NOT NULL,
	[requester_oid] nvarchar(64) NOT NULL,
	[requester_upn] nvarchar(320),
	[trigger] nvarchar(16) NOT NULL,
	[schedule_slot] nvarchar(40),
	[blob_path] nvarchar(1024) NOT NULL,
	[progress_percent] float,
	[progress_bytes] bigint,
	[size_bytes] bigint,
	[sha256] nvarchar(64),
	[error_code] nvarchar(64),
	[error_message] nvarchar(2000),
	[download_url] nvarchar(4000),
	[download_expires_at] datetime2(3),
	[created_at] datetime2(3) NOT NULL,
	[updated_at] datetime2(3) NOT NULL,
	[accepted_at] datetime2(3),
	[completed_at] datetime2(3),
	[expires_at] datetime2(3),
	CONSTRAINT [jobs_pkey] PRIMARY KEY([id]),
	CONSTRAINT [jobs_engine_check] CHECK ([engine] in ('sqlserver', 'postgres')),
	CONSTRAINT [jobs_status_check] CHECK ([status] in ('Pending', 'Queued', 'Running', 'Verifying', 'Available', 'Expired', 'Failed', 'Cancelled')),
	CONSTRAINT [jobs_trigger_check] CHECK ([trigger] in ('user', 'schedule'))
);
--> statement-breakpoint
CREATE TABLE [servers] (
	[id] nvarchar(36),
	[name] nvarchar(128) NOT NULL,
	[host] nvarchar(255) NOT NULL,
	[engine] nvarchar(16) NOT NULL,
	[description] nvarchar(1000),
	[created_at] datetime2(3) NOT NULL,
	[updated_at] datetime2(3) NOT NULL,
	CONSTRAINT [servers_pkey] PRIMARY KEY([id]),
	CONSTRAINT [servers_engine_check] CHECK ([engine] in ('sqlserver', 'postgres'))
);
--> statement-breakpoint
ALTER TABLE [databases] ADD CONSTRAINT [databases_server_id_servers_id_fk] FOREIGN KEY ([server_id]) REFERENCES [servers]([id]);--> statement-breakpoint
CREATE INDEX [audit_events_at_idx] ON [audit_events] ([at],[id]);--> statement-breakpoint
CREATE INDEX [audit_events_job_id_idx] ON [audit_events] ([job_id]);--> statement-breakpoint
CREATE INDEX [audit_events_actor_id_idx] ON [audit_events] ([actor_id]);--> statement-breakpoint
CREATE INDEX [databases_server_id_idx] ON [databases] ([server_id]);--> statement-breakpoint
CREATE INDEX [jobs_requester_created_idx] ON [jobs] ([requester_oid],[created_at],[id]);--> statement-breakpoint
CREATE INDEX [jobs_created_idx] ON [jobs] ([created_at],[id]);--> statement-breakpoint
CREATE INDEX [jobs_status_expires_idx] ON [jobs] ([status],[expires_at]);--> statement-breakpoint
CREATE UNIQUE INDEX [jobs_schedule_slot_uq] ON [jobs] ([database_id],[schedule_slot]) WHERE [schedule_slot] is not null;