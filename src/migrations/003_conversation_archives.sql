-- Relinking a number archives its open conversations: kept and readable, never answered again.

ALTER TABLE conversations
  ADD COLUMN archived_at    timestamptz,
  ADD COLUMN archive_reason text CHECK (archive_reason IN ('agent_relinked', 'agent_unlinked', 'agent_archived', 'phone_number_deleted')),
  -- An archived conversation says when and why; an active one has neither.
  ADD CONSTRAINT conversations_archive_consistent CHECK (
    (is_active AND archived_at IS NULL AND archive_reason IS NULL)
    OR (NOT is_active AND archived_at IS NOT NULL AND archive_reason IS NOT NULL)
  );
