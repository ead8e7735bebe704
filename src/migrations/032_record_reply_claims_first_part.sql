-- record_reply claims the reply's first part in its own commit (R__replies.sql): a new
-- signature, so the old one goes.
DROP FUNCTION IF EXISTS record_reply(uuid, uuid, uuid[], text, uuid, bigint, integer, uuid);
