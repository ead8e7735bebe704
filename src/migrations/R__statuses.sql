-- Outbound status order; 'failed' is terminal and ranks above everything. A status webhook
-- moves a message only to a higher rank, whatever order Meta delivers them in. Repeatable:
-- re-applied whenever this file changes (see README.md).
CREATE OR REPLACE FUNCTION outbound_status_rank(status text) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE status WHEN 'queued' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 WHEN 'failed' THEN 4 ELSE -1 END
$$;
