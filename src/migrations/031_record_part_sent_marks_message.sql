-- record_part_sent takes the message's part ids when it records the last part, and marks the
-- message sent in the same statement (R__sending.sql): a new signature, so the old one goes.
DROP FUNCTION IF EXISTS record_part_sent(uuid, uuid, integer, text);
