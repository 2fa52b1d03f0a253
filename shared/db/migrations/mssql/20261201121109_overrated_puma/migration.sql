ALTER TABLE [jobs] ADD [progress_updated_at] datetime2(3);--> statement-breakpoint
ALTER TABLE [jobs] DROP COLUMN [download_url];