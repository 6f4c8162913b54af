-- Building blocks shared by later migrations.

-- Append-only tables (transfers, usage records, audit entries) attach this trigger to
-- BEFORE UPDATE OR DELETE OR TRUNCATE; SQLSTATE class VC maps to FAILED_PRECONDITION with the
-- reason before the colon (see storage/pg_error.cc).
CREATE FUNCTION vch_forbid_mutation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'APPEND_ONLY: % is append-only; % is refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'VC001';
END
$$;
